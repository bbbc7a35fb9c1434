"""Running an agent's command: bounded output, a hard deadline, and nothing left running afterwards.

The command runs in its own session; when it ends, times out or prints too much, its whole process
group is killed, and any process still carrying the run's marker (setsid, double forks) is killed too.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from activities.workspace.sandbox import kill_marked

COMMAND_OUTPUT_LIMIT = 4 * 1024 * 1024  # bytes a command may print before it is killed
_KEEP_BYTES = 128 * 1024  # of a long output, this much of its start and of its end is kept for redaction
# Environment handed to agent commands and the workspace's own git: enough to run tests, nothing that
# could be exfiltrated.
SAFE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "JAVA_HOME",
            "GOROOT", "CARGO_HOME", "RUSTUP_HOME")


@dataclass
class OutputBuffer:
    """The start and the end of a long output, and how much was cut between them."""

    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = _KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - _KEEP_BYTES)]

    def text(self) -> str:
        middle = len(self.head) + len(self.tail) < self.total
        cut = f"\n... [{self.total - len(self.head) - len(self.tail)} bytes cut] ...\n" if middle else ""
        return self.head.decode(errors="replace") + cut + self.tail.decode(errors="replace")


def run_bounded(argv: list[str], env: dict[str, str], cwd: Path, timeout: float, marker: str
                 ) -> tuple[str, int, list[str]]:
    """Run `argv`, keeping a bounded part of its output; kill it and everything it started when done."""
    notes: list[str] = []
    output = OutputBuffer()
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = started + timeout
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                notes.append(f"timed out after {timeout:.0f}s; the command and everything it started were killed")
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                notes.append("background processes still held the output after the command ended; killed")
                break
            events = selector.select(timeout=min(0.25, deadline - now))
            if not events:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            output.add(chunk)
            if output.total > COMMAND_OUTPUT_LIMIT:
                notes.append(f"the output passed {COMMAND_OUTPUT_LIMIT:,} bytes; the command was killed")
                break
    finally:
        selector.close()
        kill_group(process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        process.stdout.close()
        killed = kill_marked(marker)
        if killed:
            notes.append(f"{killed} process(es) the command left behind were killed")
    code = process.returncode if process.returncode is not None else -9
    if notes and notes[0].startswith(("timed out", "the output passed")):
        code = -1 if code == 0 else code
    return output.text(), code, notes


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
