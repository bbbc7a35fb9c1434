"""The janitor: previews of a dead worker are swept up, a live worker's are not, and nothing unmarked is killed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from preview_fixtures import AppRepo, Processes

from activities.preview.janitor import MARKER, PreviewRecord, dir_name, new_record, reap_previews, write_record
from activities.preview.local import LocalPreviewBackend
from contracts.evidence import CheckStatus
from contracts.preview import PreviewRequest
from specs.models import AcceptanceCriterion
from workers.sample.repo import git


class Leftovers:
    """What a worker killed mid-preview leaves: a record, a worktree and a running process group."""

    def __init__(self, state: Path, repo: AppRepo) -> None:
        self.previews = state / "previews"
        self.previews.mkdir(parents=True, exist_ok=True)
        self.repo = repo
        self.started: list[subprocess.Popen[bytes]] = []

    def sleeper(self, preview_id: str | None) -> subprocess.Popen[bytes]:
        """A sleeping process leading its own group; marked as the preview's when `preview_id` is given."""
        env = {**os.environ}
        if preview_id is not None:
            env[MARKER] = preview_id
        proc = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
        self.started.append(proc)
        return proc

    def preview(self, preview_id: str, owner: int, process: subprocess.Popen[bytes] | None) -> PreviewRecord:
        record = new_record(self.previews, preview_id, str(self.repo.path))
        record = record.model_copy(update={"owner_pid": owner})
        if process is not None:
            record = record.model_copy(update={"pid": process.pid, "pgid": process.pid})
        git(self.repo.path, "worktree", "add", "-q", "--detach", record.worktree, self.repo.good)
        Path(record.log_path).write_text("log\n")
        write_record(self.previews, record)
        return record

    def gone(self, record: PreviewRecord) -> bool:
        return (
            not Path(record.worktree).exists()
            and not Path(record.log_path).exists()
            and not (self.previews / f"{dir_name(record.preview_id)}.json").exists()
            and self.repo.worktrees() == [str(self.repo.path)]
        )


@pytest.fixture
def leftovers(tmp_path: Path, app_repo: AppRepo) -> Iterator[Leftovers]:
    made = Leftovers(tmp_path / "state", app_repo)
    yield made
    for proc in made.started:
        proc.kill()
        proc.wait()


@pytest.fixture
def dead_owner() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_previews_of_a_dead_owner_are_reaped(leftovers: Leftovers, dead_owner: int, procs: Processes) -> None:
    app = leftovers.sleeper("crashed-1")
    record = leftovers.preview("crashed-1", dead_owner, app)

    removed = reap_previews(leftovers.previews, force=False, grace_s=0.5)

    assert removed == [f"killed process groups [{app.pid}] of preview crashed-1", f"removed worktree {record.worktree}"]
    assert app.wait(timeout=5) == -15  # SIGTERM was enough
    procs.assert_group_gone(app.pid)
    assert leftovers.gone(record)
    assert reap_previews(leftovers.previews, force=False, grace_s=0.5) == []  # idempotent


def test_previews_of_a_live_owner_stay_until_forced(leftovers: Leftovers) -> None:
    app = leftovers.sleeper("mine")
    record = leftovers.preview("mine", os.getpid(), app)

    assert reap_previews(leftovers.previews, force=False, grace_s=0.5) == []
    assert app.poll() is None and Path(record.worktree).exists()

    removed = reap_previews(leftovers.previews, force=True, grace_s=0.5)
    assert f"removed worktree {record.worktree}" in removed
    assert app.wait(timeout=5) == -15
    assert leftovers.gone(record)


def test_a_dead_workers_sandbox_folder_goes_with_its_preview(leftovers: Leftovers, dead_owner: int) -> None:
    folder = leftovers.previews.parent / "sandbox-of-crashed-3"
    (folder / "tmp").mkdir(parents=True)
    (folder / "tmp" / "left.txt").write_text("what the app wrote to its /tmp")
    record = leftovers.preview("crashed-3", dead_owner, None)
    write_record(leftovers.previews, record.model_copy(update={"sandbox_dir": str(folder)}))

    removed = reap_previews(leftovers.previews, force=False, grace_s=0.5)

    assert removed == [f"removed worktree {record.worktree}", f"removed sandbox folder {folder}"]
    assert not folder.exists()
    assert leftovers.gone(record)


def test_a_recycled_owner_pid_does_not_count_as_alive(leftovers: Leftovers) -> None:
    record = leftovers.preview("recycled", os.getpid(), None)
    write_record(leftovers.previews, record.model_copy(update={"owner_started_at": psutil.boot_time() - 10}))

    assert reap_previews(leftovers.previews, force=False, grace_s=0.5) == [f"removed worktree {record.worktree}"]
    assert leftovers.gone(record)


def test_a_recorded_group_without_the_marker_is_never_signalled(leftovers: Leftovers, dead_owner: int) -> None:
    stranger = leftovers.sleeper(None)  # the pgid was reused by something that is not a preview
    impostor = leftovers.sleeper("another-preview")
    record = leftovers.preview("stale", dead_owner, stranger)

    reap_previews(leftovers.previews, force=False, grace_s=0.5)

    assert stranger.poll() is None and impostor.poll() is None
    assert leftovers.gone(record)


def test_an_unreadable_record_is_dropped_with_its_folder(leftovers: Leftovers) -> None:
    (leftovers.previews / "torn").mkdir()
    (leftovers.previews / "torn.json").write_text("{not json")

    removed = reap_previews(leftovers.previews, force=False, grace_s=0.5)

    assert removed[0] == f"dropped unreadable record {leftovers.previews / 'torn.json'}"
    assert not (leftovers.previews / "torn").exists() and not (leftovers.previews / "torn.json").exists()


def test_unsafe_preview_ids_get_safe_distinct_names() -> None:
    assert dir_name("svc-slug-r1") == "svc-slug-r1"
    assert dir_name("svc/slug r1") != dir_name("svc/slug:r1")
    assert "/" not in dir_name("../../etc") and not dir_name("x.json").endswith(".json")


async def test_a_later_run_reaps_what_a_dead_worker_left(
    leftovers: Leftovers, dead_owner: int, procs: Processes
) -> None:
    app = leftovers.sleeper("crashed-2")
    record = leftovers.preview("crashed-2", dead_owner, app)
    backend = LocalPreviewBackend(leftovers.previews.parent, grace_s=0.5)
    request = PreviewRequest(
        preview_id="next",
        repo_path=str(leftovers.repo.path),
        head_sha=leftovers.repo.good,
        config=None,
        criteria=[AcceptanceCriterion(id="ok", run="true", timeout=5)],
    )

    evidence = await backend.run(request, lambda _: None)

    assert evidence.results[0].status is CheckStatus.passed
    assert app.wait(timeout=5) == -15
    procs.assert_group_gone(app.pid)
    assert leftovers.gone(record)


async def test_a_retry_of_the_same_preview_replaces_the_earlier_attempt(leftovers: Leftovers) -> None:
    earlier = leftovers.sleeper("again")
    leftovers.preview("again", os.getpid(), earlier)  # same worker, same id: an earlier attempt of this activity
    backend = LocalPreviewBackend(leftovers.previews.parent, grace_s=0.5)
    request = PreviewRequest(
        preview_id="again",
        repo_path=str(leftovers.repo.path),
        head_sha=leftovers.repo.broken,
        config=None,
        criteria=[AcceptanceCriterion(id="mode", run="cat mode.txt", timeout=5)],
    )

    evidence = await backend.run(request, lambda _: None)

    assert evidence.results[0].evidence == "broken\n"
    assert earlier.wait(timeout=5) == -15
    assert leftovers.repo.worktrees() == [str(leftovers.repo.path)]
