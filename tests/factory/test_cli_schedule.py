"""`spec2ship schedule ...` against the real dev server: create, list, pause, trigger, unpause, delete."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleOverlapPolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from contracts.factory import FactoryRunInput
from contracts.names import FACTORY_RUN
from workers.cli_schedule import IntervalError, format_interval, parse_interval, schedule_app

T = TypeVar("T")


@pytest.fixture
def address(dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch) -> str:
    target = dev_env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_ADDRESS", target)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", dev_env.client.namespace)
    return target


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(schedule_app, list(args))
    return result.exit_code, result.output


def with_client(address: str, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run `work` with a fresh client in a loop of its own (the CLI under test runs its own too)."""

    async def main() -> T:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        return await work(client)

    return asyncio.run(main())


def describe(address: str, schedule_id: str) -> ScheduleDescription:
    return with_client(address, lambda client: client.get_schedule_handle(schedule_id).describe())


def listed(schedule_id: str, wanted: str) -> str:
    """The `list` line of the schedule once it shows `wanted` (the list comes from visibility, which lags)."""
    deadline = time.monotonic() + 10
    while True:
        code, output = cli("list")
        assert code == 0, output
        line = next((line for line in output.splitlines() if line.startswith(schedule_id + "\t")), "")
        if wanted in line or time.monotonic() > deadline:
            return line
        time.sleep(0.1)


def test_a_factory_schedule_from_creation_to_deletion(address: str) -> None:
    schedule_id = f"spec2ship-factory-{uuid.uuid4().hex[:8]}"
    code, output = cli(
        "create", "factory", "--repo", "acme/shop", "--repo", "acme/blog, acme/docs", "--every", "1h30m",
        "--label", "ship-it", "--max-in-flight", "3", "--id", schedule_id, "--task-queue", "factory-q",
    )  # fmt: skip
    assert code == 0, output
    assert (
        output.strip() == f"created schedule {schedule_id}: FactoryRun every 1h30m for acme/shop, acme/blog, acme/docs"
    )

    described = describe(address, schedule_id)
    assert [spec.every for spec in described.schedule.spec.intervals] == [timedelta(hours=1, minutes=30)]
    assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (FACTORY_RUN, "factory-q")
    [request] = with_client(address, lambda client: client.data_converter.decode(action.args, [FactoryRunInput]))
    assert request == FactoryRunInput(
        repos=["acme/shop", "acme/blog", "acme/docs"], label="ship-it", max_in_flight=3, task_queue="factory-q"
    )

    code, output = cli("create", "factory", "--repo", "acme/shop", "--every", "15m", "--id", schedule_id)
    assert code == 1
    assert f"schedule {schedule_id} already exists" in output

    line = listed(schedule_id, "active")
    assert line.startswith(f"{schedule_id}\tactive\tevery 1h30m\tnext ")

    code, output = cli("pause", schedule_id, "--note", "release freeze")
    assert (code, output.strip()) == (0, f"paused {schedule_id}")
    state = describe(address, schedule_id).schedule.state
    assert (state.paused, state.note) == (True, "release freeze")
    assert listed(schedule_id, "paused").startswith(f"{schedule_id}\tpaused\t")

    assert cli("trigger", schedule_id) == (0, f"triggered {schedule_id}\n")
    deadline = time.monotonic() + 10
    while not (recent := describe(address, schedule_id).info.recent_actions) and time.monotonic() < deadline:
        time.sleep(0.1)
    [started] = recent
    run = started.action
    assert isinstance(run, ScheduleActionExecutionStartWorkflow)
    assert run.workflow_id.startswith(f"{schedule_id}-run")
    with_client(address, lambda client: client.get_workflow_handle(run.workflow_id).terminate("test over"))

    assert cli("unpause", schedule_id) == (0, f"unpaused {schedule_id}\n")
    assert describe(address, schedule_id).schedule.state.paused is False

    assert cli("delete", schedule_id) == (0, f"deleted {schedule_id}\n")
    with pytest.raises(RPCError):
        describe(address, schedule_id)
    code, output = cli("pause", schedule_id)
    assert code == 1
    assert "no such schedule" in output


@pytest.mark.parametrize("every", ["15", "15x", "m", "-5m", "0m", "1.5h", "15 minutes", ""])
def test_a_bad_interval_is_a_one_line_usage_error(address: str, every: str) -> None:
    code, output = cli("create", "factory", "--repo", "acme/shop", "--every", every)
    assert code == 2
    assert output.count("\n") == 1
    assert f"--every {every!r}" in output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [(["--repo", "acme"], "OWNER/REPO"), (["--repo", "acme/shop", "--max-in-flight", "0"], "max_in_flight")],
)
def test_bad_factory_settings_are_usage_errors(address: str, args: list[str], complaint: str) -> None:
    code, output = cli("create", "factory", *args, "--every", "15m")
    assert code == 2
    assert complaint in output


def test_an_unreachable_temporal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    code, output = cli("list")
    assert code == 1
    assert output.startswith("spec2ship schedule: cannot connect to Temporal at 127.0.0.1:1")


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("90s", 90), ("2d", 172800), (" 1H ", 3600), ("1m1s", 61)]
)
def test_parse_interval(text: str, seconds: int) -> None:
    interval = parse_interval(text)
    assert interval == timedelta(seconds=seconds)
    assert parse_interval(format_interval(interval)) == interval


def test_parse_interval_refuses_zero() -> None:
    with pytest.raises(IntervalError, match="longer than zero"):
        parse_interval("0h0m")
