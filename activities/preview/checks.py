"""The deterministic acceptance checks a preview runs: HTTP probes and shell commands.

Each check turns into one CriterionResult whatever happens: a check that cannot run is `error`, a
check that ran and saw the wrong thing is `failed`. A command runs in its own process group and is
killed as a group, at its timeout or on cancellation, so nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from activities.preview.base import Heartbeat
from activities.preview.janitor import MARKER, terminate_preview
from contracts.evidence import CheckStatus, CriterionResult
from specs.models import AcceptanceCriterion, HttpCheck

T = TypeVar("T")

_SUMMARY_CHARS = 200
_POLL_S = 0.05
_DRAIN_AFTER_EXIT_S = 2.0  # a detached grandchild may hold the pipe open; don't wait on it forever
_SHOWN_HEADERS = ("content-type", "content-length", "location")


async def finish_despite_cancel(awaitable: Awaitable[T]) -> T:
    """Await to the end even if the caller is cancelled meanwhile, then re-raise the cancellation.

    Teardown and half-done git commands must complete: a cancelled activity that leaves a process or a
    worktree behind is exactly the leak this backend exists to prevent.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done() and not task.cancelled():
                result = task.result()
                cancelled = True
                break
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


def kill_unreaped_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the group our own child leads, while it is not yet reaped.

    Until we reap it, the child's pid cannot be reused, so its group is certainly ours; this catches a
    process that replaced its environment (and with it the marker) before the marker scan saw it.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def not_run(criterion: AcceptanceCriterion, reason: str) -> CriterionResult:
    """The result of a criterion that could not be executed at all."""
    return _result(criterion, CheckStatus.error, f"not run: {reason}", "", 0.0)


def _result(
    criterion: AcceptanceCriterion, status: CheckStatus, summary: str, evidence: str, duration_s: float
) -> CriterionResult:
    return CriterionResult(
        id=criterion.id,
        kind="http" if criterion.kind == "http" else "run",
        status=status,
        summary=_one_line(summary),
        evidence=evidence,
        duration_s=round(duration_s, 3),
        key=criterion.key,
        weight=criterion.weight,
    )


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SUMMARY_CHARS else line[: _SUMMARY_CHARS - 1] + "…"


def _tail_text(data: bytes, cap: int, omitted: int = 0) -> str:
    """The last `cap` bytes as text, saying how much was cut off in front."""
    if len(data) > cap:
        omitted += len(data) - cap
        data = data[-cap:]
    text = data.decode("utf-8", errors="replace")
    return f"[{omitted} earlier bytes omitted]\n{text}" if omitted else text


# --- http ------------------------------------------------------------------------------------------


async def check_http(client: httpx.AsyncClient, criterion: AcceptanceCriterion, cap: int) -> CriterionResult:
    """Send the criterion's request to the preview (the client's base_url) and compare status and body."""
    probe = criterion.http
    if probe is None:
        raise ValueError(f"criterion {criterion.id} has no http probe; call check_http for http criteria only")
    started = time.monotonic()
    label = f"{probe.method} {probe.path}"
    try:
        async with asyncio.timeout(criterion.timeout):
            response = await client.request(
                probe.method,
                probe.path,
                content=probe.body.encode() if probe.body is not None else None,
                headers=probe.headers,
                timeout=criterion.timeout,
            )
    except (TimeoutError, httpx.TimeoutException):
        return _result(
            criterion,
            CheckStatus.failed,
            f"{label}: no response within {criterion.timeout:g}s",
            "",
            time.monotonic() - started,
        )
    except httpx.HTTPError as error:
        return _result(
            criterion,
            CheckStatus.failed,
            f"{label}: request failed: {type(error).__name__}: {error}",
            "",
            time.monotonic() - started,
        )
    duration = time.monotonic() - started
    status, summary = _judge_response(probe, label, response)
    return _result(criterion, status, summary, _excerpt(label, response, cap), duration)


def _judge_response(probe: HttpCheck, label: str, response: httpx.Response) -> tuple[CheckStatus, str]:
    got = f"{label} answered {response.status_code}"
    if response.status_code != probe.status:
        return CheckStatus.failed, f"{got}, expected {probe.status}"
    if probe.body_contains is not None:
        if probe.body_contains not in response.text:
            return CheckStatus.failed, f"{got} but the body lacks {probe.body_contains!r}"
        return CheckStatus.passed, f"{got} with {probe.body_contains!r} in the body"
    return CheckStatus.passed, got


def _excerpt(label: str, response: httpx.Response, cap: int) -> str:
    head = [f"{label} -> {response.status_code} {response.reason_phrase}"]
    head += [f"{name}: {response.headers[name]}" for name in _SHOWN_HEADERS if name in response.headers]
    body = response.content
    shown = body[:cap].decode("utf-8", errors="replace")
    more = f"\n[{len(body) - cap} more bytes]" if len(body) > cap else ""
    return "\n".join(head) + "\n\n" + shown + more


# --- run -------------------------------------------------------------------------------------------


class _Tail:
    """Keeps the last `cap` bytes of a stream and counts the rest, so a chatty command cannot fill memory."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.cap
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        return _tail_text(bytes(self.data), self.cap, self.dropped)


async def _drain(stream: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await stream.read(65536):
        tail.add(chunk)


async def check_command(
    criterion: AcceptanceCriterion,
    *,
    cwd: Path,
    env: Mapping[str, str],
    cap: int,
    heartbeat: Heartbeat,
    heartbeat_every_s: float,
    grace_s: float,
    wrap: Callable[[str], list[str]] | None = None,
) -> CriterionResult:
    """Run the criterion's shell command in `cwd`; exit 0 passes. `env` must carry the preview marker.

    `wrap` turns the command into the program that runs it (a sandbox around `sh -c`); by default it
    runs unconfined. The program leads its own process group. Whatever is left of that group when the
    command ends, times out or is cancelled is terminated (SIGTERM, then SIGKILL after `grace_s`).
    """
    command = criterion.run
    if command is None:
        raise ValueError(f"criterion {criterion.id} has no command; call check_command for run criteria only")
    preview_id = env.get(MARKER)
    if not preview_id:
        raise ValueError(f"check_command needs {MARKER} in env, or its processes could not be found again")
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *(wrap or shell)(command),
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return not_run(criterion, f"could not start the command in {cwd}: {error}")
    assert proc.stdout is not None  # stdout=PIPE
    tail = _Tail(cap)
    reader = asyncio.create_task(_drain(proc.stdout, tail))
    timed_out = False
    try:
        deadline = started + criterion.timeout
        next_beat = started + heartbeat_every_s
        # Poll returncode rather than await proc.wait(): wait() also waits for the pipe to close, which a
        # child left running in the background keeps open.
        while proc.returncode is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if now >= next_beat:
                heartbeat(f"criterion {criterion.id}: running for {now - started:.0f}s")
                next_beat = now + heartbeat_every_s
            await asyncio.sleep(min(_POLL_S, deadline - now))
    finally:
        # Also after a normal exit: what the command put in the background must not outlive it.
        await finish_despite_cancel(_stop(proc, reader, preview_id, grace_s))
    duration = time.monotonic() - started
    output = tail.text()
    if timed_out:
        return _result(
            criterion,
            CheckStatus.failed,
            f"timed out after {criterion.timeout:g}s; process group killed",
            output,
            duration,
        )
    code = proc.returncode
    if code == 0:
        return _result(criterion, CheckStatus.passed, f"exit 0 after {duration:.1f}s", output, duration)
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    return _result(criterion, CheckStatus.failed, f"{how} after {duration:.1f}s: {last}".rstrip(": "), output, duration)


def shell(command: str) -> list[str]:
    """The unconfined program for a command, as `create_subprocess_shell` would run it."""
    return ["/bin/sh", "-c", command]


async def _stop(proc: asyncio.subprocess.Process, reader: asyncio.Task[None], preview_id: str, grace_s: float) -> None:
    await asyncio.to_thread(terminate_preview, preview_id, grace_s, proc.pid)
    kill_unreaped_group(proc)  # e.g. `exec env -i ...` dropped the marker
    deadline = time.monotonic() + _DRAIN_AFTER_EXIT_S
    while proc.returncode is None and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
    # A detached process may hold the pipe: wait_for then cancels the reader, and the tail read so far is kept.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, max(deadline - time.monotonic(), 0.1))
