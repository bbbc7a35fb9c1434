"""Nothing acknowledged is lost when the webhook or Temporal restarts: real processes, as an operator runs them.

`spec2ship webhook serve` runs as its own process with its spool in a temporary folder; Temporal is the dev
server that `spec2ship up` starts (`workers.stack.temporal_server`), with its state in a file, so it can be
stopped and started again on the same port with what it held. No worker runs: a delivery counts once its
SpecToShip workflow exists, exactly once.

1. Temporal is down from the start: deliveries are answered 202 and wait in the spool (`spec2ship webhook
   spool` says so and why); the webhook is killed (SIGKILL, no shutdown) and started again; Temporal comes
   up; every run starts, once.
2. Temporal stops while deliveries arrive and comes back with its state: the runs started before are still
   there, the ones delivered meanwhile start, none twice; a redelivery is a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from doubles.processes import free_port, start, stop, wait_for_status
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner
from webhook_doubles import SECRET, issue_payload

from workers.cli_webhook import webhook_app
from workers.stack import temporal_server
from workers.webhook.signature import sign

pytestmark = pytest.mark.slow

REPO = "octo/restarts"


class WebhookProcess:
    """`spec2ship webhook serve` on a port of its own, with a spool that outlives the process."""

    def __init__(self, folder: Path, temporal_port: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.spool = folder / "spool.sqlite3"
        self.log = folder / "webhook.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "SPEC2SHIP_"))},
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "SPEC2SHIP_TASK_QUEUE": "restarts",
            "SPEC2SHIP_DATA_DIR": str(folder / "data"),
            "SPEC2SHIP_WEBHOOK_SPOOL": str(self.spool),
            "SPEC2SHIP_WEBHOOK_SECRET": SECRET,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start(["webhook", "serve", "--port", str(self.port)], self.env, self.log)
        wait_for_status(f"{self.url}/readyz", 200, self.process, self.log)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no drain stop; only what is on disk survives."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def label(self, issue: int, delivery: str) -> dict[str, Any]:
        body = json.dumps(issue_payload(number=issue, repo=REPO, installation=None)).encode()
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(SECRET, body)}
        answer = httpx.post(f"{self.url}/webhooks/github", content=body, headers=headers, timeout=10)
        assert answer.status_code == 202, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def spool_report(self) -> dict[str, Any]:
        """What `spec2ship webhook spool --json` says about this process's spool."""
        result = CliRunner().invoke(webhook_app, ["spool", "--path", str(self.spool), "--json"])
        assert result.exit_code == 0, result.output
        report: dict[str, Any] = json.loads(result.output)
        return report


@pytest.fixture
def temporal_port() -> int:
    return free_port()


@pytest.fixture
def webhook(tmp_path: Path, temporal_port: int) -> Iterator[WebhookProcess]:
    made = WebhookProcess(tmp_path, temporal_port)
    yield made
    made.stop()


@contextlib.asynccontextmanager
async def temporal(folder: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    """The dev server on `port` with its state in `folder` (started again later, it has what it had)."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")  # nothing answers there: temporal_server starts one
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    async with temporal_server(folder, port, free_port()) as (client, started):
        assert started
        yield client


async def runs_of(client: Client, issues: list[int]) -> dict[int, int]:
    """How many SpecToShip executions each issue's workflow id has (0: none yet)."""
    counts = {}
    for issue in issues:
        workflow_id = f"spec2ship/{REPO}/issues/{issue}"
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            counts[issue] = 0
            continue
        counts[issue] = len([run async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'")])
    return counts


async def eventually(check: Callable[[], Any], what: str, limit_s: float = 120) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; the drain's back-off decides when."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.5)


async def test_deliveries_taken_while_temporal_was_down_survive_a_killed_webhook(
    webhook: WebhookProcess, temporal_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issues = [1, 2, 3, 4, 5]
    webhook.start()
    for issue in issues:
        assert webhook.label(issue, f"down-{issue}")["status"] == "queued"
    # The drain tried and says why it waits.
    waiting = await eventually(lambda: (r := webhook.spool_report())["last_error"] and r, "a failed attempt")
    assert waiting["pending"] == len(issues)
    assert "Temporal" in waiting["last_error"]

    webhook.kill()
    webhook.start()  # the same spool: what the killed process took is still there
    assert webhook.spool_report()["pending"] == len(issues)

    async with temporal(tmp_path / "temporal", temporal_port, monkeypatch) as client:
        counts = await eventually(lambda: _all_started(client, issues), "every run to start")
        assert counts == {issue: 1 for issue in issues}
        assert (await eventually(lambda: webhook.spool_report()["pending"] == 0 or None, "an empty spool")) is True


async def test_a_temporal_restart_loses_nothing_and_starts_nothing_twice(
    webhook: WebhookProcess, temporal_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, during = [11, 12, 13], [21, 22, 23]
    state = tmp_path / "temporal"
    async with temporal(state, temporal_port, monkeypatch) as client:
        webhook.start()
        for issue in before:
            webhook.label(issue, f"before-{issue}")
        assert await eventually(lambda: _all_started(client, before), "the first runs") == {i: 1 for i in before}

    # Temporal is gone: deliveries are still taken, and wait.
    for issue in during:
        assert webhook.label(issue, f"during-{issue}")["status"] == "queued"
    assert webhook.label(before[0], f"before-{before[0]}")["status"] == "duplicate"  # GitHub redelivers one

    async with temporal(state, temporal_port, monkeypatch) as client:
        counts = await eventually(lambda: _all_started(client, before + during), "every run")
        assert counts == {issue: 1 for issue in before + during}
        assert (await eventually(lambda: webhook.spool_report()["pending"] == 0 or None, "an empty spool")) is True


async def _all_started(client: Client, issues: list[int]) -> dict[int, int] | None:
    counts = await runs_of(client, issues)
    return counts if all(counts.values()) else None
