"""The local preview backend: the PR head in a throw-away git worktree, served by a local process.

The embedded default, for one machine and no cluster. Each run checks the head out into a fresh
detached worktree, starts `preview.start` on a free port in its own process group, waits for the
ready path, runs the http and run criteria, and tears everything down in a `finally`, also when the
activity is cancelled. A state record written before anything starts lets the janitor clean up after
a worker that died mid-run. Where bubblewrap works the app and the run criteria are confined
(confined.py), following SPEC2SHIP_SANDBOX as agent commands do; the evidence's log says which.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import httpx

from activities.forge.gitcli import Git, GitError
from activities.preview.base import Heartbeat, PreviewError
from activities.preview.checks import (
    check_command,
    check_http,
    finish_despite_cancel,
    kill_unreaped_group,
    not_run,
)
from activities.preview.confined import HOST, Bubblewrapped, PreviewConfinement, Unconfined, unconfined_reason
from activities.preview.janitor import (
    PreviewRecord,
    dispose,
    new_record,
    read_record,
    reap_previews,
    record_path,
    remove_worktree,
    write_record,
)
from activities.workspace import sandbox
from activities.workspace.sandbox import Confinement, SandboxUnavailable
from contracts.evidence import CriterionResult, PreviewEvidence
from contracts.preview import PreviewRequest
from specs.models import PreviewConfig

log = logging.getLogger(__name__)

# What the change's code inherits from the worker. Everything else (tokens, API keys, Temporal
# credentials) stays out: the preview runs code an agent wrote.
_BASICS = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
_PROXIES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"})
INHERITED_ENV = _BASICS | _PROXIES
_PROBE_TIMEOUT_S = 2.0
_REAP_CHILD_S = 5.0


class PreviewCheckoutError(PreviewError):
    """`git worktree add` failed: the head commit is missing or the repository is unusable."""


class PreviewSandboxError(PreviewError):
    """SPEC2SHIP_SANDBOX=bubblewrap, but bubblewrap cannot run on this worker: no preview is started."""


@dataclass
class _Session:
    """What one run has created so far; teardown undoes exactly this."""

    record: PreviewRecord
    confinement: PreviewConfinement
    proc: asyncio.subprocess.Process | None = None
    url: str | None = None
    port: int | None = None


@dataclass
class _Readiness:
    ready: bool = False
    after_s: float | None = None
    error: str | None = None


class LocalPreviewBackend:
    """PreviewBackend for one machine: git worktrees under `state_dir/previews` and local processes."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        grace_s: float = 3.0,
        poll_interval_s: float = 0.1,
        heartbeat_every_s: float = 2.0,
        inherit_env: Collection[str] = INHERITED_ENV,
        confinement: Confinement | str | None = None,
    ) -> None:
        """`confinement` overrides SPEC2SHIP_SANDBOX (`auto`, `bubblewrap`, `none`) for this backend."""
        self.previews_dir = Path(state_dir) / "previews"
        self.grace_s = grace_s
        self.poll_interval_s = poll_interval_s
        self.heartbeat_every_s = heartbeat_every_s
        self.inherit_env = frozenset(inherit_env)
        self.sandbox_setting = None if confinement is None else str(confinement)

    def reap(self, force: bool = False) -> list[str]:
        """Remove previews whose worker died; `force=True` (at worker start) removes all of them.

        Use `force` only when no other live worker shares this state folder.
        """
        return reap_previews(self.previews_dir, force=force, grace_s=self.grace_s)

    async def run(self, request: PreviewRequest, heartbeat: Heartbeat) -> PreviewEvidence:
        """One result per http and run criterion, in spec order; judge criteria are left to the validation
        agent and get none here. Raises PreviewCheckoutError when the head commit cannot be checked out, and
        PreviewSandboxError when confinement is required but bubblewrap cannot run here."""
        kind = self._kind()
        self.previews_dir.mkdir(parents=True, exist_ok=True)
        await finish_despite_cancel(asyncio.to_thread(self._clear_stale, request.preview_id))
        # The sandbox's folder holds a Unix socket, whose path must stay short: it lives in the temp folder.
        folder = tempfile.mkdtemp(prefix="spec2ship-preview-") if kind is Confinement.bubblewrap else None
        record = new_record(self.previews_dir, request.preview_id, request.repo_path, sandbox_dir=folder)
        confinement: PreviewConfinement = (
            Bubblewrapped(worktree=Path(record.worktree), folder=Path(folder)) if folder is not None
            else Unconfined(reason=unconfined_reason(self.sandbox_setting)))
        session = _Session(record=record, confinement=confinement)
        write_record(self.previews_dir, session.record)  # before the worktree exists, so a crash leaves a trace
        try:
            return await self._run(session, request, heartbeat)
        finally:
            await finish_despite_cancel(self._teardown(session))

    def _kind(self) -> Confinement:
        try:
            return sandbox.choose(self.sandbox_setting)
        except SandboxUnavailable as error:
            raise PreviewSandboxError(f"no preview was started: {error}") from error

    def _clear_stale(self, preview_id: str) -> None:
        """Sweep up dead workers' previews, and an earlier attempt of this very preview (a retry)."""
        for line in self.reap():
            log.info("janitor: %s", line)
        earlier = read_record(record_path(self.previews_dir, preview_id))
        if earlier is not None:
            log.warning("preview %s: cleaning up an earlier attempt before starting again", preview_id)
            dispose(earlier, self.previews_dir, self.grace_s)

    async def _run(self, session: _Session, request: PreviewRequest, heartbeat: Heartbeat) -> PreviewEvidence:
        worktree = Path(session.record.worktree)
        heartbeat(f"preview {request.preview_id}: checking out {request.head_sha[:12]}")
        checkout = asyncio.to_thread(_add_worktree, request.repo_path, str(worktree), request.head_sha)
        await finish_despite_cancel(checkout)  # a half-made worktree would race the teardown
        await asyncio.to_thread(session.confinement.prepare)
        config = request.config
        readiness = _Readiness()
        if config is not None and config.start:
            readiness = await self._start(session, request, config, heartbeat)
        results = await self._check_all(session, request, readiness, heartbeat)
        return PreviewEvidence(
            backend=self.name,
            url=session.url,
            ready=readiness.ready,
            ready_after_s=readiness.after_s,
            start_error=readiness.error,
            log_tail=_read_tail(Path(session.record.log_path), request.output_cap_bytes),
            confinement=session.confinement.note(),
            results=results,
        )

    async def _start(
        self, session: _Session, request: PreviewRequest, config: PreviewConfig, heartbeat: Heartbeat
    ) -> _Readiness:
        assert config.start is not None
        port = _free_port()
        command = config.start.replace("{port}", str(port))
        env = self._env(session) | {"PORT": str(port)}
        with open(session.record.log_path, "ab") as log_file:
            session.proc = await asyncio.create_subprocess_exec(
                *session.confinement.start_argv(command, port, env),
                cwd=session.record.worktree,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        session.url, session.port = f"http://{HOST}:{port}", port
        session.record = session.record.model_copy(update={"pid": session.proc.pid, "pgid": session.proc.pid})
        write_record(self.previews_dir, session.record)
        return await self._wait_ready(session, config, heartbeat, request.preview_id)

    async def _wait_ready(
        self, session: _Session, config: PreviewConfig, heartbeat: Heartbeat, preview_id: str
    ) -> _Readiness:
        """Poll the ready path until it answers 2xx, the start command exits, or ready_timeout passes."""
        proc, url = session.proc, session.url
        assert proc is not None and url is not None
        started = time.monotonic()
        deadline = started + config.ready_timeout
        exited = asyncio.create_task(proc.wait())
        last = "no answer yet"
        try:
            async with session.confinement.client(url) as client:
                while True:
                    if exited.done():
                        return _Readiness(
                            error=f"preview start command exited with code {proc.returncode} after "
                            f"{time.monotonic() - started:.1f}s, before {config.ready} answered 2xx; see log_tail"
                        )
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return _Readiness(
                            error=f"preview did not answer 2xx on {config.ready} within {config.ready_timeout:g}s "
                            f"(last: {last}); it was stopped, see log_tail"
                        )
                    try:
                        response = await client.get(config.ready, timeout=min(_PROBE_TIMEOUT_S, remaining))
                        if response.is_success:
                            return _Readiness(ready=True, after_s=round(time.monotonic() - started, 3))
                        last = f"HTTP {response.status_code}"
                    except httpx.HTTPError as error:
                        last = type(error).__name__
                    heartbeat(f"preview {preview_id}: waiting for {url}{config.ready} ({last})")
                    await asyncio.wait({exited}, timeout=min(self.poll_interval_s, max(deadline - time.monotonic(), 0)))
        finally:
            if not exited.done():
                exited.cancel()

    async def _check_all(
        self, session: _Session, request: PreviewRequest, readiness: _Readiness, heartbeat: Heartbeat
    ) -> list[CriterionResult]:
        env = self._env(session)
        if session.url is not None:
            env |= {"PREVIEW_URL": session.url, "PORT": str(session.port)}
        cap = request.output_cap_bytes
        results: list[CriterionResult] = []

        def confine(command: str) -> list[str]:
            return session.confinement.check_argv(command, session.port, env)

        async with session.confinement.client(session.url or f"http://{HOST}") as client:
            for criterion in request.criteria:
                heartbeat(f"preview {request.preview_id}: criterion {criterion.id}")
                if criterion.kind == "http":
                    if readiness.ready:
                        results.append(await check_http(client, criterion, cap))
                    elif session.url is None:
                        results.append(not_run(criterion, "no preview.start in the spec, so there is nothing to probe"))
                    else:
                        results.append(not_run(criterion, f"the preview never became ready: {readiness.error}"))
                elif criterion.kind == "run":
                    results.append(
                        await check_command(
                            criterion,
                            cwd=Path(session.record.worktree),
                            env=env,
                            cap=cap,
                            heartbeat=heartbeat,
                            heartbeat_every_s=self.heartbeat_every_s,
                            grace_s=self.grace_s,
                            wrap=confine,
                        )
                    )
        return results

    def _env(self, session: _Session) -> dict[str, str]:
        """The worker's environment minus its secrets, plus the marker that lets the janitor find the processes."""
        inherited = {k: v for k, v in os.environ.items() if k in self.inherit_env or k.startswith("LC_")}
        return session.confinement.env(inherited, session.record.preview_id)

    async def _teardown(self, session: _Session) -> None:
        """Stop every process of the preview, remove its worktree, sandbox folder, log and record. Never raises:
        a failure is logged and the record kept, so the janitor retries at the next worker start."""
        try:
            await asyncio.to_thread(self._dispose, session.record)
        finally:
            if session.proc is not None:
                kill_unreaped_group(session.proc)
                try:
                    await asyncio.wait_for(session.proc.wait(), _REAP_CHILD_S)
                except TimeoutError:
                    log.error(
                        "preview %s: start command %d did not exit after SIGKILL",
                        session.record.preview_id,
                        session.proc.pid,
                    )

    def _dispose(self, record: PreviewRecord) -> None:
        try:
            dispose(record, self.previews_dir, self.grace_s)
        except Exception:  # teardown runs in a finally: it must not mask the run's own outcome
            log.exception("preview %s: teardown incomplete; the janitor will retry", record.preview_id)


def _add_worktree(repo_path: str, worktree: str, head_sha: str) -> None:
    """A fresh detached checkout of `head_sha`; hooks are off, the repository's hooks are not the change's."""
    if Path(worktree).exists():  # left by a crash before its record was written; git may still list it
        remove_worktree(repo_path, worktree)
    try:
        result = Git(Path(repo_path), config={"core.hooksPath": "/dev/null"}, timeout_s=300).run(
            "worktree", "add", "--detach", worktree, head_sha, check=False)
    except GitError as error:
        raise PreviewCheckoutError(f"could not check out {head_sha} from {repo_path}: {error}") from error
    if not result.ok:
        raise PreviewCheckoutError(
            f"could not check out {head_sha} from {repo_path} into a preview worktree: {result.stderr.strip()}; "
            "check that the commit exists in that repository"
        )


def _free_port() -> int:
    """A port the kernel just handed out; released again at once, so the preview can bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _read_tail(path: Path, cap: int) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - cap, 0))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return f"[{size - cap} earlier bytes omitted]\n{text}" if size > cap else text
