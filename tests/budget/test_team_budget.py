"""TeamBudget on the real time-skipping server, driven through the real activities.

Covers the arithmetic (reserve, commit, extend, release), the calendar rollover, and ten runs racing
for a budget that cannot hold them all, with the overspend bound proved below and asserted.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.budget.activities import BudgetActivities, failure_message
from contracts.budget import (
    BudgetConfig,
    BudgetLimits,
    BudgetPeriod,
    BudgetState,
    BudgetView,
    ReleaseInput,
    ReleaseRequest,
    ReserveInput,
    ReserveOutcome,
    ReserveRequest,
    UsageCommitInput,
)
from contracts.names import CONFIGURE, RELEASE, RESERVE, SHOW, TEAM_BUDGET, budget_id
from rules.budget_periods import period_end, period_start
from workers.temporal_client import find_binary
from workflows.team_budget import TeamBudget


@dataclass
class Budget:
    """One team's budget workflow plus the activities a run would call, run in an activity context."""

    team: str
    handle: WorkflowHandle
    activities: BudgetActivities
    context: ActivityEnvironment = field(default_factory=ActivityEnvironment)

    async def reserve(self, run_id: str, tokens: int, usd: float = 0.0) -> ReserveOutcome:
        return await self.context.run(
            self.activities.reserve_budget, ReserveInput(team=self.team, run_id=run_id, tokens=tokens, usd=usd)
        )

    async def extend(self, run_id: str, tokens: int, request_id: str, usd: float = 0.0) -> ReserveOutcome:
        request = ReserveInput(team=self.team, run_id=run_id, tokens=tokens, usd=usd, request_id=request_id)
        return await self.context.run(self.activities.extend_budget, request)

    async def commit(self, run_id: str, call_id: str, tokens: int, usd: float = 0.0) -> None:
        usage = UsageCommitInput(team=self.team, run_id=run_id, call_id=call_id, tokens=tokens, usd=usd)
        await self.context.run(self.activities.commit_usage, usage)

    async def release(self, run_id: str) -> int:
        outcome = await self.context.run(self.activities.release_budget, ReleaseInput(team=self.team, run_id=run_id))
        return outcome.returned_tokens if outcome.released else -1

    async def show(self) -> BudgetView:
        view: BudgetView = await self.handle.query(SHOW, result_type=BudgetView)
        return view


class Teams:
    """Opens budgets on one server and task queue, and terminates them when the test ends."""

    def __init__(self, env: WorkflowEnvironment, task_queue: str) -> None:
        self.env = env
        self.task_queue = task_queue
        self.handles: list[WorkflowHandle] = []

    async def open(self, limits: BudgetLimits, period: BudgetPeriod = BudgetPeriod.month) -> Budget:
        team = f"team-{uuid.uuid4().hex[:8]}"
        handle = await self.env.client.start_workflow(
            TEAM_BUDGET,
            BudgetState(team=team, limits=limits, period=period),
            id=budget_id(team),
            task_queue=self.task_queue,
        )
        self.handles.append(handle)
        return Budget(team=team, handle=handle, activities=BudgetActivities(self.env.client, self.task_queue))


async def _serve(env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Teams]:
    teams = Teams(env, task_queue)
    try:
        async with Worker(env.client, task_queue=task_queue, workflows=[TeamBudget]):
            yield teams
    finally:
        # Budgets never end by themselves; one left behind without a worker would hold back the
        # shared time-skipping clock (the server waits for its timer's workflow task).
        for handle in teams.handles:
            await handle.terminate("test finished")


@pytest_asyncio.fixture
async def teams(skip_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Teams]:
    async for served in _serve(skip_env, task_queue):
        yield served


@pytest_asyncio.fixture
async def own_clock(task_queue: str) -> AsyncIterator[Teams]:
    """A time-skipping server of our own: skipping a month in the shared one would fire other tests' timers."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")), data_converter=pydantic_data_converter
    )
    try:
        async for served in _serve(env, task_queue):
            yield served
    finally:
        await env.shutdown()


async def test_reserve_commit_release_arithmetic(teams: Teams) -> None:
    budget = await teams.open(BudgetLimits(tokens=200_000, usd=10.0))

    first = await budget.reserve("run-a", 50_000, usd=2.0)
    assert first.granted and first.reservation is not None
    assert (first.reservation.remaining_tokens, first.reservation.remaining_usd) == (150_000, 8.0)
    again = await budget.reserve("run-a", 50_000, usd=2.0)
    assert again.reservation == first.reservation, "a repeated reserve answers with the same reservation"

    await budget.commit("run-a", "call-1", 30_000, usd=1.0)
    await budget.commit("run-a", "call-1", 30_000, usd=1.0)  # a retried commit counts once
    view = await budget.show()
    assert (view.used.tokens, view.reserved.tokens, view.free_tokens) == (30_000, 20_000, 150_000)
    assert view.used.usd == pytest.approx(1.0) and view.free_usd == pytest.approx(8.0)

    # Past the reservation: still recorded, and it shrinks what others can have.
    await budget.commit("run-a", "call-2", 40_000)
    view = await budget.show()
    assert (view.used.tokens, view.reserved.tokens, view.free_tokens) == (70_000, 0, 130_000)

    refused = await budget.reserve("run-b", 140_000)
    assert not refused.granted and refused.reservation is None
    assert refused.reason == (
        f"team {budget.team} has 130,000 tokens left of 200,000 this month; this run needs 140,000"
    )
    dollars = await budget.reserve("run-b", 1_000, usd=9.5)
    assert not dollars.granted
    assert dollars.reason == f"team {budget.team} has $8.00 left of $10.00 this month; this run needs $9.50"

    second = await budget.reserve("run-b", 100_000, usd=3.0)
    assert second.granted and second.reservation is not None
    assert second.reservation.remaining_tokens == 30_000 and second.reservation.open_reservations == 2

    # Extend: refused past the free amount, deduplicated by request id.
    too_much = await budget.extend("run-b", 30_001, request_id="x1")
    assert not too_much.granted
    assert too_much.reason.endswith("this run needs 30,001 more")
    grown = await budget.extend("run-b", 10_000, request_id="x2")
    retried = await budget.extend("run-b", 10_000, request_id="x2")
    assert grown.reservation is not None and retried.reservation is not None
    assert grown.reservation.tokens == retried.reservation.tokens == 110_000
    assert (await budget.show()).free_tokens == 20_000

    await budget.commit("run-b", "call-3", 60_000, usd=1.25)
    assert await budget.release("run-a") == 0, "run-a overspent: nothing to give back"
    assert await budget.release("run-b") == 50_000
    assert await budget.release("run-b") == 50_000, "a repeated release gives the same answer and changes nothing"
    assert await budget.release("run-never") == -1, "releasing what was never reserved fails nothing"
    late = await budget.extend("run-b", 1, request_id="x3")
    assert not late.granted and "holds no reservation" in late.reason
    with pytest.raises(WorkflowUpdateFailedError) as closed:
        await budget.handle.execute_update(RESERVE, ReserveRequest(run_id="run-b", tokens=1))
    assert failure_message(closed.value).startswith("run run-b already released its reservation on team")

    view = await budget.show()
    assert (view.used.tokens, view.reserved.tokens, view.free_tokens, view.open_reservations) == (
        130_000, 0, 70_000, 0
    )
    assert view.used.usd == pytest.approx(2.25)


async def test_release_signal_and_configure_validator(teams: Teams) -> None:
    budget = await teams.open(BudgetLimits(tokens=1_000))
    assert (await budget.reserve("run-a", 600)).granted
    await budget.handle.signal(RELEASE, ReleaseRequest(run_id="run-a"))
    assert (await budget.reserve("run-b", 1_000)).granted, "the signal gave run-a's claim back"

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await budget.handle.execute_update(CONFIGURE, BudgetConfig(tokens=-1, usd=-2.0))
    assert failure_message(refused.value) == (
        f"budget for team {budget.team} not changed: tokens must be 0 or more, got -1; usd must be 0 or more, got -2.0"
    )
    view = await budget.handle.execute_update(
        CONFIGURE, BudgetConfig(tokens=5_000, usd=None, period=BudgetPeriod.week), result_type=BudgetView
    )
    assert (view.limits.tokens, view.period, view.free_tokens) == (5_000, BudgetPeriod.week, 4_000)
    assert view.period_start.weekday() == 0 and len(view.history) == 1, "the month so far went to history"


async def test_a_new_period_resets_usage_and_keeps_history(own_clock: Teams) -> None:
    worker = own_clock.env
    budget = await own_clock.open(BudgetLimits(tokens=100_000))
    assert (await budget.reserve("run-a", 40_000)).granted
    await budget.commit("run-a", "call-1", 25_000)
    assert not (await budget.reserve("run-b", 70_000)).granted
    before = await budget.show()
    now = await worker.get_current_time()
    month_start = period_start(now, BudgetPeriod.month)
    assert before.period_start == month_start

    await worker.sleep(period_end(month_start, BudgetPeriod.month) - now + timedelta(hours=1))

    after = await budget.show()
    assert after.period_start == period_end(month_start, BudgetPeriod.month)
    assert after.used.tokens == 0
    assert after.reserved.tokens == 15_000, "run-a's unspent claim carries into the new period"
    assert [(h.start, h.end, h.used.tokens) for h in after.history] == [
        (month_start, after.period_start, 25_000)
    ]
    assert (await budget.reserve("run-b", 70_000)).granted
    assert after.period_start.tzinfo is not None and after.period_start.astimezone(UTC).day == 1
    assert isinstance(after.period_end, datetime)


# Ten runs racing for a budget that holds four.
#
# Notation: L the team limit, M a call's max_tokens, R each run's reservation. U the team's used tokens,
# O the sum over open reservations of max(0, reserved - used by that run).
# (1) A grant needs L - U - O >= R, so right after any grant U + O <= L.
# (2) A commit of u tokens by run r raises U by u and lowers O by min(u, O_r): U + O grows only by the
#     part of u beyond r's reservation. A release only lowers O.
# (3) A run makes a call only while its own used < R (the reservation still has room), and a call uses
#     at most M tokens, so a run ends at most M - 1 tokens past its reservation.
# (4) After the last grant (time t*), only runs open at t* can commit, so at any time
#     U <= U(t*) + O(t*) + k * (M - 1) <= L + k * (M - 1), where k is the number of runs open at t*.
# Each grant reports how many runs held a reservation then (this one included); the test takes the
# largest such count as k (k never exceeds it) and asserts U <= L + k * (M - 1) after every commit.
# Also, every granted run ends with used >= R and that stays in U + O, so at most L // R runs are granted.

LIMIT = 100_000
MAX_TOKENS = 4_096
RESERVATION = 25_000
RUNS = 10
REFUSAL = re.compile(r"^team team-\w+ has [\d,]+ tokens left of 100,000 this month; this run needs 25,000$")


def call_size(run: int, call: int) -> int:
    """A deterministic spread between M/2 and M, so runs end at different overshoots."""
    return MAX_TOKENS - (run * 389 + call * 977) % (MAX_TOKENS // 2)


async def test_racing_runs_overshoot_at_most_one_call_each(teams: Teams) -> None:
    budget = await teams.open(BudgetLimits(tokens=LIMIT))
    open_at_grant: list[int] = []
    reasons: list[str] = []
    spent: dict[int, int] = {}
    observed: list[int] = []

    async def simulated_run(run: int) -> None:
        run_id = f"run-{run}"
        outcome = await budget.reserve(run_id, RESERVATION)
        if not outcome.granted:
            reasons.append(outcome.reason)
            return
        assert outcome.reservation is not None
        open_at_grant.append(outcome.reservation.open_reservations)
        used, call = 0, 0
        try:
            while used < RESERVATION:  # a call is made only while the reservation has room
                tokens = call_size(run, call)
                await budget.commit(run_id, f"{run_id}/call-{call}", tokens)
                used += tokens
                call += 1
                observed.append((await budget.show()).used.tokens)
        finally:
            spent[run] = used
            await budget.release(run_id)

    await asyncio.gather(*(simulated_run(run) for run in range(RUNS)))

    final = await budget.show()
    k = max(open_at_grant)
    bound = LIMIT + k * (MAX_TOKENS - 1)
    granted = len(spent)
    assert 1 <= granted <= LIMIT // RESERVATION
    assert len(reasons) == RUNS - granted
    assert all(REFUSAL.match(reason) for reason in reasons), reasons
    assert final.used.tokens == sum(spent.values()), "every commit counted exactly once"
    assert all(RESERVATION <= used <= RESERVATION + MAX_TOKENS - 1 for used in spent.values())
    assert max([*observed, final.used.tokens]) <= bound
    assert (final.open_reservations, final.reserved.tokens) == (0, 0), "every reservation was released"
    assert final.free_tokens == LIMIT - final.used.tokens
