"""Starting the real `spec2ship` commands as processes, as a pod would, and probing them over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def spec2ship_binary() -> str:
    """The console script installed beside this interpreter (the one the image's entry point runs)."""
    return str(Path(sys.executable).parent / "spec2ship")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`spec2ship ARGS` in its own session (so a test can signal it and its children alone)."""
    return subprocess.Popen([spec2ship_binary(), *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def wait_for_status(url: str, status: int, process: subprocess.Popen[bytes], log: Path,
                    timeout_s: float = 60) -> httpx.Response:
    """Poll `url` until it answers `status`; fail with the process's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {url} answered {status}:\n"
                                 f"{log.read_text()[-3000:]}")
        last = get(url)
        if last is not None and last.status_code == status:
            return last
        time.sleep(0.2)
    seen = f"{last.status_code} {last.text}" if last is not None else "no answer"
    raise AssertionError(f"{url} did not answer {status} within {timeout_s} s (last: {seen}):\n"
                         f"{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Clean-up for a process a test left running: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
