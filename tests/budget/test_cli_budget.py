"""`spec2ship budget set/show` against the real dev server, with a worker serving the budgets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from contracts.budget import BudgetView
from contracts.names import SHOW, TEAM_BUDGET, budget_id
from workers.cli_budget import budget_app
from workflows.team_budget import TeamBudget


@pytest_asyncio.fixture
async def served(
    dev_env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    """The CLI's environment points at the dev server and a fresh queue; yields the teams to clean up."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("SPEC2SHIP_TASK_QUEUE", task_queue)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("SPEC2SHIP_DEFAULT_TEAM_TOKENS", raising=False)
    teams: list[str] = []
    async with Worker(dev_env.client, task_queue=task_queue, workflows=[TeamBudget]):
        yield teams
        for team in teams:
            await dev_env.client.get_workflow_handle(budget_id(team)).terminate("test finished")


async def cli(*args: str) -> Result:
    """The CLI runs its own event loop (asyncio.run), so it runs in a thread beside the worker's loop."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(budget_app, list(args)))


def new_team(teams: list[str]) -> str:
    team = f"cli-{uuid.uuid4().hex[:8]}"
    teams.append(team)
    return team


async def test_set_then_show(served: list[str], dev_env: WorkflowEnvironment) -> None:
    team = new_team(served)
    result = await cli("set", team, "--tokens", "200000", "--usd", "50", "--period", "week")
    assert result.exit_code == 0, result.output
    assert f"budget for team {team} set: 200,000 tokens, $50.00 per week" in result.output

    shown = await cli("show", team, "--json")
    assert shown.exit_code == 0, shown.output
    view = BudgetView.model_validate(json.loads(shown.stdout))
    assert (view.team, view.limits.tokens, view.limits.usd, view.period.value) == (team, 200_000, 50.0, "week")
    assert (view.used.tokens, view.free_tokens, view.open_reservations) == (0, 200_000, 0)

    table = await cli("show", team)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    at = next(index for index, line in enumerate(lines) if team in line)
    assert "200k of 200k" in lines[at] and "$50.00" in lines[at] and "week to" in lines[at + 1]

    # Changing the budget again keeps the workflow and replaces the limits.
    again = await cli("set", team, "--tokens", "1000")
    assert again.exit_code == 0, again.output
    handle = dev_env.client.get_workflow_handle(budget_id(team))
    current = await handle.query(SHOW, result_type=BudgetView)
    assert (current.limits.tokens, current.limits.usd, current.period.value) == (1_000, None, "month")
    # Created with the org default (month), then week, then month again: each change closes a period.
    assert [closed.limits.tokens for closed in current.history] == [2_000_000, 200_000]


async def test_show_all_teams(served: list[str], dev_env: WorkflowEnvironment) -> None:
    first, second = new_team(served), new_team(served)
    for team, tokens in ((first, "300"), (second, "400")):
        assert (await cli("set", team, "--tokens", tokens)).exit_code == 0
    await wait_until_listed(dev_env, {first, second})

    shown = await cli("show", "--json")
    assert shown.exit_code == 0, shown.output
    payload: list[dict[str, Any]] = json.loads(shown.stdout)
    limits = {entry["team"]: entry["limits"]["tokens"] for entry in payload}
    assert (limits[first], limits[second]) == (300, 400)

    table = await cli("show")
    assert table.exit_code == 0, table.output
    assert first in table.output and second in table.output


async def wait_until_listed(env: WorkflowEnvironment, teams: set[str]) -> None:
    """Visibility is eventually consistent: wait (bounded) until the list shows the new budgets."""
    wanted = {budget_id(team) for team in teams}
    for _ in range(100):
        query = f"WorkflowType='{TEAM_BUDGET}' AND ExecutionStatus='Running'"
        if wanted <= {execution.id async for execution in env.client.list_workflows(query)}:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"budgets {sorted(wanted)} never appeared in the workflow list")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", "-5"], "not changed: tokens must be 0 or more, got -5"),
        (["--tokens", "10", "--usd", "-1"], "not changed: usd must be 0 or more, got -1.0"),
        (["--tokens", "10", "--period", "year"], "unknown period 'year'"),
    ],
)
async def test_bad_input_exits_1_with_a_reason(served: list[str], args: list[str], message: str) -> None:
    team = new_team(served)
    result = await cli("set", team, *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert team in result.stderr
    served.remove(team)  # nothing was created


async def test_show_an_unknown_team(served: list[str]) -> None:
    result = await cli("show", f"nobody-{uuid.uuid4().hex[:6]}")
    assert result.exit_code == 1
    assert "has no budget yet" in result.stderr and "spec2ship budget set" in result.stderr
