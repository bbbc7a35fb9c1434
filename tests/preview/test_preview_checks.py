"""The deterministic checks on their own: shell commands (exit codes, timeouts, output cap, stragglers)
and HTTP probes that get no answer."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from preview_fixtures import PY, Processes

from activities.preview.checks import check_command, check_http, finish_despite_cancel
from activities.preview.janitor import MARKER
from contracts.evidence import CheckStatus, CriterionResult
from specs.models import AcceptanceCriterion, HttpCheck


async def command(tmp_path: Path, script: str, timeout: float = 10, cap: int = 8000) -> CriterionResult:
    criterion = AcceptanceCriterion(id="c", run=script, timeout=timeout)
    env = {**os.environ, MARKER: f"checks-{tmp_path.name}"}
    return await check_command(
        criterion, cwd=tmp_path, env=env, cap=cap, heartbeat=lambda _: None, heartbeat_every_s=0.1, grace_s=0.3
    )


async def test_exit_zero_passes_with_its_output(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the cwd\n")
    result = await command(tmp_path, "cat data.txt")
    assert result.status is CheckStatus.passed
    assert result.kind == "run"
    assert result.summary.startswith("exit 0 after ")
    assert result.evidence == "from the cwd\n"


async def test_exit_one_fails_and_names_the_last_line(tmp_path: Path) -> None:
    result = await command(tmp_path, "echo checking; echo 'assertion failed: 2 != 3' >&2; exit 1")
    assert result.status is CheckStatus.failed
    assert result.summary.startswith("exit 1 after ")
    assert result.summary.endswith(": assertion failed: 2 != 3")
    assert result.evidence == "checking\nassertion failed: 2 != 3\n"


async def test_hanging_command_is_killed_at_its_timeout(tmp_path: Path, procs: Processes) -> None:
    pgid_file = tmp_path / "pgid"
    result = await command(tmp_path, f"echo $$ > {pgid_file}; echo started; exec sleep 30", timeout=0.5)
    assert result.status is CheckStatus.failed
    assert result.summary == "timed out after 0.5s; process group killed"
    assert result.evidence == "started\n"
    procs.assert_group_gone(int(pgid_file.read_text()))


async def test_command_ignoring_sigterm_is_killed_with_its_children(tmp_path: Path, procs: Processes) -> None:
    pgid_file, child_file = tmp_path / "pgid", tmp_path / "child"
    script = f"trap '' TERM; echo $$ > {pgid_file}; sleep 30 & echo $! > {child_file}; wait; echo not reached"
    result = await command(tmp_path, script, timeout=0.5)
    assert result.status is CheckStatus.failed
    assert "timed out after 0.5s" in result.summary
    assert procs.live_members(int(pgid_file.read_text())) == []
    assert not _running(int(child_file.read_text()))


async def test_what_a_command_leaves_in_the_background_is_stopped(tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    result = await command(tmp_path, f"sleep 30 & echo $! > {child_file}; echo done")
    assert result.status is CheckStatus.passed
    assert result.evidence == "done\n"
    assert not _running(int(child_file.read_text()))


async def test_output_is_capped_to_its_tail(tmp_path: Path) -> None:
    result = await command(tmp_path, f"{PY} -c \"print('x' * 100000); print('END')\"", cap=1000)
    assert result.status is CheckStatus.passed
    assert result.evidence == "[99005 earlier bytes omitted]\n" + "x" * 995 + "\nEND\n"  # the last 1000 bytes


async def test_cancelled_command_is_killed(tmp_path: Path, procs: Processes) -> None:
    pgid_file = tmp_path / "pgid"
    task = asyncio.ensure_future(command(tmp_path, f"echo $$ > {pgid_file}; exec sleep 30", timeout=60))
    while not (pgid_file.exists() and pgid_file.read_text().strip()):
        assert not task.done()
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    procs.assert_group_gone(int(pgid_file.read_text()))


async def test_finish_despite_cancel_completes_the_work_then_reraises() -> None:
    finished: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0.1)
        finished.append("cleanup")

    async def caller() -> None:
        await finish_despite_cancel(cleanup())

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # a second cancellation must not cut the cleanup short either
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["cleanup"]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_http_probe_without_answer_fails_at_its_timeout(silent_server: str) -> None:
    criterion = AcceptanceCriterion(id="slow", http=HttpCheck(path="/"), timeout=0.3)
    async with httpx.AsyncClient(base_url=silent_server, trust_env=False) as client:
        result = await check_http(client, criterion, 8000)
    assert result.status is CheckStatus.failed
    assert result.summary == "GET /: no response within 0.3s"


async def test_http_probe_of_a_dead_preview_fails() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    criterion = AcceptanceCriterion(id="dead", http=HttpCheck(path="/health"), timeout=5, key=False, weight=0.5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        result = await check_http(client, criterion, 8000)
    assert result.status is CheckStatus.failed
    assert result.summary.startswith("GET /health: request failed: ConnectError")
    assert (result.key, result.weight) == (False, 0.5)
