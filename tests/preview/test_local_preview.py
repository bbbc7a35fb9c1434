"""LocalPreviewBackend end to end: real git worktrees, a real app process, real HTTP, real teardown."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from preview_fixtures import PY, AppRepo, Processes

from activities.preview.base import PreviewBackend
from activities.preview.local import LocalPreviewBackend, PreviewCheckoutError
from contracts.evidence import CheckStatus, PreviewEvidence
from contracts.preview import PreviewRequest
from rules.report import ReportInput, render_report
from specs.models import AcceptanceCriterion, HttpCheck, PreviewConfig

START_APP = f"exec {PY} app.py {{port}}"  # exec: the app is our direct child, so its group empties completely


def http(id: str, path: str, **probe: object) -> AcceptanceCriterion:
    return AcceptanceCriterion(id=id, http=HttpCheck(path=path, **probe), timeout=5)  # type: ignore[arg-type]


def run(id: str, command: str, timeout: float = 10) -> AcceptanceCriterion:
    return AcceptanceCriterion(id=id, run=command, timeout=timeout)


class Recorder:
    """The heartbeat: keeps the lines and, like the janitor would, reads the state record while it exists."""

    def __init__(self, state: Path, preview_id: str) -> None:
        self.record = state / "previews" / f"{preview_id}.json"
        self.lines: list[str] = []
        self.pgid: int | None = None
        self.sandbox_dir: str | None = None

    def __call__(self, details: str) -> None:
        self.lines.append(details)
        if self.record.exists():
            record = json.loads(self.record.read_text())
            self.pgid = record["pgid"] or self.pgid
            self.sandbox_dir = record["sandbox_dir"] or self.sandbox_dir


async def preview(
    state: Path,
    repo: AppRepo,
    sha: str,
    criteria: list[AcceptanceCriterion],
    config: PreviewConfig | None,
    mode: str = "none",
) -> tuple[PreviewEvidence, Recorder]:
    backend = LocalPreviewBackend(state, grace_s=0.5, heartbeat_every_s=0.2, confinement=mode)
    beat = Recorder(state, "p1")
    request = PreviewRequest(preview_id="p1", repo_path=str(repo.path), head_sha=sha, config=config, criteria=criteria)
    return await backend.run(request, beat), beat


def assert_torn_down(state: Path, repo: AppRepo, beat: Recorder | None = None) -> None:
    assert not (state / "previews" / "p1").exists()
    assert not (state / "previews" / "p1.json").exists()
    assert not (state / "previews" / "p1.log").exists()
    assert repo.worktrees() == [str(repo.path)]
    Processes.assert_preview_gone("p1")
    if beat is not None and beat.sandbox_dir is not None:
        assert not Path(beat.sandbox_dir).exists()


def assert_confinement(evidence: PreviewEvidence, mode: str, beat: Recorder) -> None:
    """The evidence names the confinement the preview ran under; a sandbox had its own folder."""
    assert evidence.confinement is not None
    assert evidence.confinement.startswith(f"preview confinement: {mode} ("), evidence.confinement
    report = render_report(ReportInput(workflow_id="w", spec_title="t", service="s", team="t", preview=evidence))
    assert f"- {evidence.confinement}" in report, "the PR's evidence says how the preview was confined"
    assert (beat.sandbox_dir is not None) is (mode == "bubblewrap")


def test_local_backend_satisfies_the_protocol(tmp_path: Path) -> None:
    backend: PreviewBackend = LocalPreviewBackend(tmp_path)
    assert backend.name == "local"


async def test_good_app_passes_http_and_run_criteria(
    tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    criteria = [
        http("hello", "/hello", body_contains="hello world"),
        http(
            "echo",
            "/echo",
            method="POST",
            status=201,
            body="ping",
            headers={"X-Token": "t0k"},
            body_contains="echo ping token=t0k",
        ),
        run(
            "url",
            f"{PY} -c \"import os, urllib.request as u; print(u.urlopen(os.environ['PREVIEW_URL'] + '/health')"
            ".read().decode(), os.environ['PORT'])\"",
        ),
        run("checkout", 'test "$(cat mode.txt)" = good && echo right commit'),
    ]
    config = PreviewConfig(start=START_APP, ready="/health", ready_timeout=10)
    evidence, beat = await preview(tmp_path, app_repo, app_repo.good, criteria, config, mode)

    assert evidence.ready and evidence.start_error is None
    assert_confinement(evidence, mode, beat)
    assert evidence.url is not None and evidence.url.startswith("http://127.0.0.1:")
    assert [r.status for r in evidence.results] == [CheckStatus.passed] * 4, evidence.results
    assert [r.kind for r in evidence.results] == ["http", "http", "run", "run"]
    assert "hello world" in evidence.results[0].evidence
    assert evidence.results[0].summary == "GET /hello answered 200 with 'hello world' in the body"
    assert evidence.results[2].evidence.strip() == f"ok {evidence.url.rsplit(':', 1)[1]}"
    assert "right commit" in evidence.results[3].evidence
    assert "listening on" in evidence.log_tail and "GET /hello" in evidence.log_tail
    assert any("criterion url" in line for line in beat.lines)
    assert beat.pgid is not None
    procs.assert_group_gone(beat.pgid)
    assert_torn_down(tmp_path, app_repo, beat)


async def test_broken_app_fails_the_http_and_run_criteria(
    tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    config = PreviewConfig(start=START_APP, ready="/health", ready_timeout=10)
    url_check = f"{PY} -c \"import os, urllib.request as u; u.urlopen(os.environ['PREVIEW_URL'] + '/hello')\""
    criteria = [http("hello", "/hello"), run("hello-from-a-command", url_check), run("mode", "grep -q good mode.txt")]
    evidence, beat = await preview(tmp_path, app_repo, app_repo.broken, criteria, config, mode)

    assert evidence.ready
    assert_confinement(evidence, mode, beat)
    result, command, mode_check = evidence.results
    assert result.status is CheckStatus.failed
    assert result.summary == "GET /hello answered 500, expected 200"
    assert "internal error" in result.evidence
    assert command.status is CheckStatus.failed and "HTTP Error 500" in command.evidence, command
    assert mode_check.status is CheckStatus.failed and mode_check.summary.startswith("exit 1 after ")
    assert beat.pgid is not None
    procs.assert_group_gone(beat.pgid)
    assert_torn_down(tmp_path, app_repo, beat)


async def test_app_that_never_gets_ready_is_stopped(
    tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    config = PreviewConfig(start=f"exec {PY} never.py {{port}}", ready="/health", ready_timeout=0.5)
    criteria = [http("hello", "/hello"), run("still-runs", "echo fine")]
    evidence, beat = await preview(tmp_path, app_repo, app_repo.good, criteria, config, mode)

    assert not evidence.ready
    assert evidence.start_error is not None and "did not answer 2xx on /health within 0.5s" in evidence.start_error
    assert "warming up" in evidence.log_tail
    assert evidence.results[0].status is CheckStatus.error
    assert "never became ready" in evidence.results[0].summary
    assert evidence.results[1].status is CheckStatus.passed
    assert beat.pgid is not None
    procs.assert_group_gone(beat.pgid)
    assert_torn_down(tmp_path, app_repo, beat)


async def test_app_that_crashes_at_start_reports_its_log(tmp_path: Path, app_repo: AppRepo, mode: str) -> None:
    config = PreviewConfig(start=f"exec {PY} crash.py {{port}}", ready="/health", ready_timeout=10)
    evidence, _ = await preview(tmp_path, app_repo, app_repo.good, [http("hello", "/hello")], config, mode)

    assert not evidence.ready
    assert evidence.start_error is not None and "exited with code 3" in evidence.start_error
    assert "boom: DATABASE_URL is not set" in evidence.log_tail
    assert evidence.results[0].status is CheckStatus.error
    assert_torn_down(tmp_path, app_repo)


async def test_without_start_http_is_error_and_run_criteria_run_in_the_worktree(
    tmp_path: Path, app_repo: AppRepo, mode: str
) -> None:
    judge = AcceptanceCriterion(id="intent", judge="the greeting is friendly")
    criteria = [http("hello", "/hello"), run("mode", "cat mode.txt"), judge]
    evidence, _ = await preview(tmp_path, app_repo, app_repo.broken, criteria, None, mode)

    assert evidence.url is None and not evidence.ready
    assert [r.id for r in evidence.results] == ["hello", "mode"]  # judge criteria are the validation agent's
    assert evidence.results[0].status is CheckStatus.error
    assert "no preview.start" in evidence.results[0].summary
    assert evidence.results[1].status is CheckStatus.passed
    assert evidence.results[1].evidence.strip() == "broken"  # the head commit's file, not the main checkout's
    assert_torn_down(tmp_path, app_repo)


async def test_worker_secrets_stay_out_of_the_preview(
    tmp_path: Path, app_repo: AppRepo, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("WANTED_BY_TESTS", "yes")
    backend = LocalPreviewBackend(tmp_path, inherit_env={"PATH", "WANTED_BY_TESTS"}, confinement=mode)
    request = PreviewRequest(
        preview_id="p1", repo_path=str(app_repo.path), head_sha=app_repo.good, config=None, criteria=[run("env", "env")]
    )
    evidence = await backend.run(request, lambda _: None)
    shown = evidence.results[0].evidence
    assert "SPEC2SHIP_PREVIEW_ID=p1" in shown and "WANTED_BY_TESTS=yes" in shown
    assert "ghp_secret" not in shown
    if mode == "bubblewrap":
        assert "HOME=/tmp" in shown.splitlines()


async def test_a_hanging_criterion_and_what_one_leaves_behind_are_stopped(
    tmp_path: Path, app_repo: AppRepo, mode: str
) -> None:
    criteria = [run("hang", "echo started; exec sleep 30", timeout=0.5), run("background", "sleep 30 & echo done")]
    evidence, beat = await preview(tmp_path, app_repo, app_repo.good, criteria, None, mode)

    hang, background = evidence.results
    assert hang.status is CheckStatus.failed and hang.summary == "timed out after 0.5s; process group killed"
    assert hang.evidence == "started\n"
    assert background.status is CheckStatus.passed and background.evidence == "done\n"
    assert_torn_down(tmp_path, app_repo, beat)


async def test_missing_commit_raises_and_leaves_nothing(
    tmp_path: Path, app_repo: AppRepo, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "t"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where a sandbox's folder would be made
    with pytest.raises(PreviewCheckoutError, match=r"could not check out 0{40}"):
        await preview(tmp_path, app_repo, "0" * 40, [run("x", "true")], None, mode)
    assert_torn_down(tmp_path, app_repo)
    assert list(temp.iterdir()) == []


async def _cancel_when(task: asyncio.Task[object], ready: object) -> None:
    """Poll (without time limits of our own: the test's criteria hang for 30 s) until `ready()` is true."""
    assert callable(ready)
    while not ready():
        assert not task.done(), task
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancellation_during_a_criterion_leaves_no_process_and_no_worktree(
    tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    # Written into the worktree, the one place a sandboxed command may write; in a sandbox $$ is a pid of
    # its own namespace, so only the unconfined run checks the command's group by number.
    started = tmp_path / "state" / "previews" / "p1" / "criterion.pgid"
    criteria = [run("hang", "echo $$ > criterion.pgid; exec sleep 30", timeout=60)]
    config = PreviewConfig(start=START_APP, ready="/health", ready_timeout=10)
    backend = LocalPreviewBackend(tmp_path / "state", grace_s=0.5, heartbeat_every_s=0.2, confinement=mode)
    beat = Recorder(tmp_path / "state", "p1")
    request = PreviewRequest(
        preview_id="p1", repo_path=str(app_repo.path), head_sha=app_repo.good, config=config, criteria=criteria
    )
    task = asyncio.ensure_future(backend.run(request, beat))
    seen: list[str] = []

    def criterion_started() -> bool:
        seen[:] = [started.read_text().strip()] if started.exists() else []
        return seen != [] and seen[0] != ""

    await _cancel_when(task, criterion_started)

    assert beat.pgid is not None
    procs.assert_group_gone(beat.pgid)
    if mode == "none":
        procs.assert_group_gone(int(seen[0]))
    assert_torn_down(tmp_path / "state", app_repo, beat)


async def test_cancellation_while_waiting_for_ready_stops_the_app(
    tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    config = PreviewConfig(start=f"exec {PY} never.py {{port}}", ready="/health", ready_timeout=60)
    backend = LocalPreviewBackend(tmp_path / "state", grace_s=0.5, confinement=mode)
    beat = Recorder(tmp_path / "state", "p1")
    request = PreviewRequest(
        preview_id="p1",
        repo_path=str(app_repo.path),
        head_sha=app_repo.good,
        config=config,
        criteria=[http("hello", "/hello")],
    )
    task = asyncio.ensure_future(backend.run(request, beat))

    await _cancel_when(task, lambda: beat.pgid is not None)

    assert beat.pgid is not None
    procs.assert_group_gone(beat.pgid)
    assert_torn_down(tmp_path / "state", app_repo, beat)
