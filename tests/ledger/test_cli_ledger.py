"""The ledger's CLI commands against the real dev server, with a ledger worker on the test's queue."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
import typer
from ledger_records import outcome_record
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from activities import config
from activities.ledger.activities import LedgerActivities
from contracts.ledger import LaterSignal, LedgerState, OutcomeRecord
from contracts.names import LEDGER_STATE, ledger_id
from contracts.runs import RunState
from workers import cli_ledger
from workflows.service_ledger import ServiceLedger

app = typer.Typer()
for command in (cli_ledger.trust, cli_ledger.dora, cli_ledger.incident, cli_ledger.revert, cli_ledger.restored):
    app.command()(command)


async def invoke(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop while the worker keeps serving in this one."""
    return await asyncio.to_thread(lambda: CliRunner().invoke(app, list(args)))


def record(service: str, number: int, finished: datetime, state: RunState = RunState.merged) -> OutcomeRecord:
    return outcome_record(
        f"spec2ship/cli-test/{service}/{number}",
        service,
        number,
        finished,
        state,
        first_commit_at=finished - timedelta(hours=2),
        started_at=finished - timedelta(hours=3),
        merge_sha=f"{service}-{number}",
    )


@pytest_asyncio.fixture
async def service(dev_env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A service with five runs in its ledger, the CLI pointed at the fixture's server and queue."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("SPEC2SHIP_TASK_QUEUE", task_queue)
    monkeypatch.delenv("TEMPORAL_API_KEY", raising=False)
    monkeypatch.delenv("TEMPORAL_TLS", raising=False)
    assert config.task_queue() == task_queue
    name = f"svc-{uuid.uuid4().hex[:8]}"
    ledger = LedgerActivities(dev_env.client, task_queue)
    now = datetime.now(UTC)
    async with Worker(dev_env.client, task_queue=task_queue, workflows=[ServiceLedger]):
        for number in range(4):
            await ledger.record_outcome(record(name, number, now - timedelta(days=number + 1)))
        await ledger.record_outcome(record(name, 4, now - timedelta(days=1), RunState.rejected))
        try:
            yield name
        finally:
            await dev_env.client.get_workflow_handle(ledger_id(name)).terminate("test finished")


async def test_trust_as_json_and_as_a_table(service: str) -> None:
    result = await invoke("trust", service, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["service"] == service
    assert report["runs"] == 5
    assert 0 < report["trust"] < report["point_estimate"] < 1
    assert report["merges_to_clear"] > 0
    lower = json.loads((await invoke("trust", service, "--json", "--bar", "0.1")).stdout)
    assert (lower["bar"], lower["merges_to_clear"], lower["trust"]) == (0.1, 0, report["trust"])

    table = await invoke("trust", service)
    assert table.exit_code == 0, table.output
    assert f"trust of {service}" in table.stdout
    assert "more clean merges would clear it" in table.stdout


async def test_dora_as_json_with_a_window(service: str) -> None:
    result = await invoke("dora", service, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["all"]["merges"] == 4 and report["agent"]["merges"] == 4 and report["human"]["merges"] == 0
    assert report["agent"]["lead_time_median_s"] == pytest.approx(7200)

    since = (datetime.now(UTC) - timedelta(days=2, hours=12)).strftime("%Y-%m-%dT%H:%M:%S")
    narrow = json.loads((await invoke("dora", service, "--since", since, "--json")).stdout)
    assert narrow["all"]["merges"] == 2

    table = await invoke("dora", service)
    assert table.exit_code == 0, table.output
    assert "change failure rate" in table.stdout


async def test_an_incident_takes_trust_to_zero_and_a_restore_gives_time_to_restore(
    service: str, dev_env: WorkflowEnvironment
) -> None:
    result = await invoke("incident", service, "--sha", f"{service}-0", "--note", "checkout 500s")
    assert result.exit_code == 0, result.output
    assert f"recorded an incident on {service}-0" in result.stdout
    report = json.loads((await invoke("trust", service, "--json")).stdout)
    assert report["trust"] == 0.0
    assert report["capped_until"] is not None

    assert (await invoke("restored", service, "--sha", f"{service}-0")).exit_code == 0
    assert (await invoke("revert", service, "--sha", f"{service}-1")).exit_code == 0
    state = await dev_env.client.get_workflow_handle(ledger_id(service)).query(LEDGER_STATE, result_type=LedgerState)
    assert [item.kind for item in state.later] == [LaterSignal.incident, LaterSignal.restored, LaterSignal.revert]
    assert state.later[0].note == "checkout 500s"
    dora = json.loads((await invoke("dora", service, "--json")).stdout)
    assert dora["agent"]["restores"] == 1 and dora["agent"]["failed_changes"] == 2


@pytest.mark.parametrize(
    "args",
    [("trust", "{name}"), ("dora", "{name}", "--json"), ("incident", "{name}", "--sha", "abc")],
)
async def test_an_unknown_service_is_an_error(args: tuple[str, ...], service: str) -> None:
    name = f"no-such-{uuid.uuid4().hex[:6]}"
    result = await invoke(*(arg.format(name=name) for arg in args))
    assert result.exit_code == 1
    assert f"no ledger for service '{name}'" in result.stderr
    assert result.stdout == ""
