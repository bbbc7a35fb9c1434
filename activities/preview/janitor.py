"""Finding and removing what local previews leave behind: process groups, git worktrees, state records.

Every process a preview starts carries `SPEC2SHIP_PREVIEW_ID=<id>` in its environment. That marker,
read back from the process table, is the only licence to kill: a recorded pgid is never signalled on
trust, because after a crash the number may belong to someone else by now. The same functions serve
the normal teardown of a run and the janitor that sweeps up after a worker that died mid-preview.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import psutil
from pydantic import BaseModel, Field, ValidationError

from activities.forge.gitcli import Git, GitError, GitResult

log = logging.getLogger(__name__)

MARKER = "SPEC2SHIP_PREVIEW_ID"
# No dots: a name never ends in .json or .log, so a worktree folder is never mistaken for a record.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_POLL_S = 0.05
_KILL_WAIT_S = 2.0  # after SIGKILL; the kernel needs only moments, this bounds a stuck (D-state) process
_GIT_TIMEOUT_S = 60.0


class PreviewRecord(BaseModel):
    """What a crashed worker's successor needs to clean up one preview; written before anything starts."""

    preview_id: str
    repo_path: str
    worktree: str
    log_path: str
    owner_pid: int
    owner_started_at: float = Field(description="psutil create_time of the owner, so a reused pid is not 'alive'.")
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    pid: int | None = Field(default=None, description="The preview's start command, once it runs.")
    pgid: int | None = None
    sandbox_dir: str | None = Field(default=None, description="The bubblewrap sandbox's /tmp and socket folder.")


def dir_name(preview_id: str) -> str:
    """A file-system-safe name for a preview id; ids that are already safe are kept as they are."""
    if _SAFE_NAME.match(preview_id):
        return preview_id
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", preview_id).strip("-_")[:60] or "preview"
    return f"{cleaned}-{hashlib.sha256(preview_id.encode()).hexdigest()[:10]}"


def record_path(previews_dir: Path, preview_id: str) -> Path:
    return previews_dir / f"{dir_name(preview_id)}.json"


def write_record(previews_dir: Path, record: PreviewRecord) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a record."""
    path = record_path(previews_dir, record.preview_id)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.model_dump_json(indent=2))
    os.replace(tmp, path)
    return path


def new_record(previews_dir: Path, preview_id: str, repo_path: str, sandbox_dir: str | None = None) -> PreviewRecord:
    name = dir_name(preview_id)
    me = psutil.Process()
    return PreviewRecord(
        preview_id=preview_id,
        repo_path=repo_path,
        worktree=str(previews_dir / name),
        log_path=str(previews_dir / f"{name}.log"),
        owner_pid=me.pid,
        owner_started_at=me.create_time(),
        sandbox_dir=sandbox_dir,
    )


# --- processes -------------------------------------------------------------------------------------


def marked_processes(preview_id: str, pgid: int | None = None) -> list[psutil.Process]:
    """Live processes of this user whose environment carries the marker for `preview_id`.

    Restricted to one process group when `pgid` is given (a criterion's cleanup must not touch the server).
    """
    uid, me = os.getuid(), os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or proc.uids().real != uid:
                continue
            if pgid is not None and os.getpgid(proc.pid) != pgid:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARKER) == preview_id:
                found.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue  # gone meanwhile, a zombie, or not ours to read
    return found


def _live_members(pgids: set[int]) -> list[int]:
    """Pids in these groups that are not zombies (a zombie is dead; only its parent's wait() removes it)."""
    alive: list[int] = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) in pgids and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return alive


def _signal_groups(pgids: Iterable[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _wait_gone(pgids: set[int], preview_id: str, scope: int | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not _live_members(pgids) and not marked_processes(preview_id, scope):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def terminate_preview(preview_id: str, grace_s: float, pgid: int | None = None) -> list[int]:
    """SIGTERM every process group holding a marked process, wait `grace_s`, then SIGKILL what is left.

    With `pgid`, only that group (a criterion's command). Returns the groups signalled. Never signals
    the caller's own group: a marked process found there (it should not be) is killed on its own.
    """
    own_group = os.getpgrp()
    signalled: set[int] = set()
    for _ in range(3):  # a process may fork into a new group between scan and signal; look again
        marked = marked_processes(preview_id, pgid)
        if not marked:
            break
        groups: set[int] = set()
        for proc in marked:
            try:
                group = os.getpgid(proc.pid)
            except ProcessLookupError:
                continue
            if group == own_group:
                log.warning(
                    "preview %s: process %d shares the worker's process group; killing it alone", preview_id, proc.pid
                )
                _kill_one(proc)
            else:
                groups.add(group)
        signalled |= groups
        _signal_groups(groups, signal.SIGTERM)
        if _wait_gone(groups, preview_id, pgid, grace_s):
            continue
        _signal_groups(groups, signal.SIGKILL)
        for proc in marked_processes(preview_id, pgid):
            _kill_one(proc)
        if not _wait_gone(groups, preview_id, pgid, _KILL_WAIT_S):
            log.error(
                "preview %s: processes %s survived SIGKILL (stuck in the kernel?)", preview_id, _live_members(groups)
            )
    return sorted(signalled)


def _kill_one(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.Error):
        proc.kill()


# --- worktrees -------------------------------------------------------------------------------------


def _git(repo_path: str, *args: str) -> GitResult:
    """A failed git is an answer here, not an error: the caller removes by hand what git would not."""
    try:
        return Git(Path(repo_path), timeout_s=_GIT_TIMEOUT_S).run(*args, check=False)
    except GitError as error:  # the repository is gone, or git hung
        return GitResult(args=list(args), returncode=-1, stdout="", stderr=str(error))


def remove_worktree(repo_path: str, worktree: str) -> None:
    """`git worktree remove --force` then `prune`; a folder git would not remove is deleted by hand.

    Raises WorktreeCleanupError when the folder is still there afterwards.
    """
    repo_known = Path(repo_path).is_dir()
    if repo_known and Path(worktree).exists():
        result = _git(repo_path, "worktree", "remove", "--force", worktree)
        if result.returncode != 0:
            log.info("git worktree remove %s: %s", worktree, result.stderr.strip())
    if Path(worktree).exists():
        shutil.rmtree(worktree, ignore_errors=True)
    if repo_known:
        _git(repo_path, "worktree", "prune")
    if Path(worktree).exists():
        raise WorktreeCleanupError(
            f"preview worktree {worktree} could not be removed; delete it by hand and run `git worktree prune` "
            f"in {repo_path}"
        )


class WorktreeCleanupError(RuntimeError):
    """A preview's worktree survived removal; the record is kept so the janitor tries again."""


# --- records ---------------------------------------------------------------------------------------


def dispose(record: PreviewRecord, previews_dir: Path, grace_s: float) -> list[str]:
    """Kill the preview's processes, remove its worktree, sandbox folder and log, then its record. Idempotent.

    The record goes last: if anything before it fails, the next janitor pass finds it again.
    """
    done: list[str] = []
    groups = terminate_preview(record.preview_id, grace_s)
    if groups:
        done.append(f"killed process groups {groups} of preview {record.preview_id}")
    if Path(record.worktree).exists():
        remove_worktree(record.repo_path, record.worktree)
        done.append(f"removed worktree {record.worktree}")
    elif Path(record.repo_path).is_dir():
        _git(record.repo_path, "worktree", "prune")
    if record.sandbox_dir is not None and Path(record.sandbox_dir).exists():
        shutil.rmtree(record.sandbox_dir, ignore_errors=True)
        done.append(f"removed sandbox folder {record.sandbox_dir}")
    Path(record.log_path).unlink(missing_ok=True)
    record_path(previews_dir, record.preview_id).unlink(missing_ok=True)
    return done


def owner_alive(record: PreviewRecord) -> bool:
    """True while the process that wrote the record still runs (a recycled pid does not count)."""
    try:
        owner = psutil.Process(record.owner_pid)
        return abs(owner.create_time() - record.owner_started_at) < 1.0 and owner.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def read_record(path: Path) -> PreviewRecord | None:
    try:
        return PreviewRecord.model_validate_json(path.read_text())
    except (OSError, ValidationError, ValueError):
        return None


def reap_previews(previews_dir: Path, *, force: bool, grace_s: float) -> list[str]:
    """Dispose of every preview whose owner is gone, or of all of them with `force` (worker start).

    `force` is only right when this state folder belongs to the calling worker alone. Returns one line
    per thing removed, for the log; a preview that cannot be cleaned is logged and left for next time.
    """
    if not previews_dir.is_dir():
        return []
    removed: list[str] = []
    for path in sorted(previews_dir.glob("*.json")):
        if not path.is_file():
            continue
        record = read_record(path)
        if record is None:
            removed += _drop_unreadable(path)
            continue
        if not force and owner_alive(record):
            continue
        try:
            lines = dispose(record, previews_dir, grace_s)
        except (WorktreeCleanupError, OSError, subprocess.SubprocessError) as error:
            log.error("janitor: preview %s not cleaned up: %s", record.preview_id, error)
            continue
        removed += lines or [f"dropped record of preview {record.preview_id} (nothing left running)"]
    return removed


def _drop_unreadable(path: Path) -> list[str]:
    """A record that does not parse cannot name its processes; its worktree folder, if any, still goes."""
    worktree = path.with_suffix("")
    lines = [f"dropped unreadable record {path}"]
    if worktree.is_dir():
        shutil.rmtree(worktree, ignore_errors=True)
        lines.append(f"removed folder {worktree} (run `git worktree prune` in its repository)")
    path.unlink(missing_ok=True)
    return lines
