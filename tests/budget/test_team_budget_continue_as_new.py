"""Continue-as-new loses nothing: hundreds of reserves, extends, commits and releases across many runs.

A dev server of its own, told to suggest continue-as-new after 30 history events, so the budget
workflow hands its state on many times while the traffic is in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.budget.activities import BudgetActivities
from contracts.budget import BudgetView, ReleaseInput, ReserveInput, UsageCommitInput
from contracts.names import SHOW, budget_id
from workflows.team_budget import TeamBudget

RUNS = 40
CALLS = 6
ATTEMPTS = 10
In = TypeVar("In")
Out = TypeVar("Out")



class Retrying:
    """Runs an activity as a worker would: in an activity context, and again after a transient RPC error.

    Near a continue-as-new the server fails the workflow task that would close the run when new
    signals arrived meanwhile (UnhandledCommand) and aborts the updates in that task; Temporal's
    activity retry covers that in production, so the activities must be, and here are, idempotent.
    """

    def __init__(self) -> None:
        self.context = ActivityEnvironment()
        self.retries = 0

    async def run(self, activity: Callable[[In], Awaitable[Out]], request: In) -> Out:
        for _ in range(ATTEMPTS - 1):
            try:
                return await self.context.run(activity, request)
            except RPCError:
                self.retries += 1
        return await self.context.run(activity, request)


async def count_runs(env: WorkflowEnvironment, workflow_id: str, first_run_id: str) -> int:
    """Follow the continue-as-new chain from the first run to the current one."""
    runs, run_id = 1, first_run_id
    while True:
        history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        runs += 1


async def test_no_signal_or_update_is_lost_across_continue_as_new(
    eager_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "10000000")
    task_queue = f"budget-can-{uuid.uuid4()}"
    team = f"team-{uuid.uuid4().hex[:8]}"
    budgets = BudgetActivities(eager_env.client, task_queue)
    context = Retrying()
    committed: list[int] = []

    async def simulated_run(run: int) -> None:
        run_id = f"run-{run}"
        granted = await context.run(budgets.reserve_budget, ReserveInput(team=team, run_id=run_id, tokens=2_000))
        assert granted.granted, granted.reason
        for call in range(CALLS):
            tokens = 100 + run * 7 + call
            usage = UsageCommitInput(team=team, run_id=run_id, call_id=f"{run_id}/{call}", tokens=tokens)
            await context.run(budgets.commit_usage, usage)
            committed.append(tokens)
            if call == 2:
                await context.run(budgets.commit_usage, usage)  # a retried activity: must count once
                again = await context.run(budgets.reserve_budget, ReserveInput(team=team, run_id=run_id, tokens=9))
                assert again.reservation is not None and again.reservation.tokens == 2_000, "the same claim"
                more = ReserveInput(team=team, run_id=run_id, tokens=500, request_id=f"{run_id}/extend")
                first = await context.run(budgets.extend_budget, more)
                retried = await context.run(budgets.extend_budget, more)
                assert first.reservation is not None and retried.reservation is not None
                assert first.reservation.tokens == retried.reservation.tokens == 2_500
        released = await context.run(budgets.release_budget, ReleaseInput(team=team, run_id=run_id))
        assert released.released and released.used_tokens == sum(100 + run * 7 + c for c in range(CALLS))
        assert released.returned_tokens == 2_500 - released.used_tokens

    # The server admits at most 10 in-flight updates per workflow (history.maxInFlightUpdates) and makes
    # the rest back off; 8 runs at a time keep the traffic dense without waiting on that back-off.
    gate = asyncio.Semaphore(8)

    async def limited(run: Awaitable[None]) -> None:
        async with gate:
            await run

    async with Worker(eager_env.client, task_queue=task_queue, workflows=[TeamBudget]):
        await simulated_run(RUNS)  # creates the budget (update-with-start) with the org default
        handle = eager_env.client.get_workflow_handle(budget_id(team))
        first_run_id = (await handle.describe()).run_id
        await asyncio.gather(*(limited(simulated_run(run)) for run in range(RUNS)))
        view: BudgetView = await handle.query(SHOW, result_type=BudgetView)
        runs = await count_runs(eager_env, budget_id(team), first_run_id)
        await handle.terminate("test finished")

    assert len(committed) == (RUNS + 1) * CALLS
    assert view.limits.tokens == 10_000_000
    assert view.used.tokens == sum(committed), "every commit counted, each exactly once"
    assert (view.open_reservations, view.reserved.tokens) == (0, 0), "every release arrived"
    assert view.free_tokens == 10_000_000 - sum(committed)
    assert runs >= 5, f"expected several continue-as-new runs, got {runs}"
