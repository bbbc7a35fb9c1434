"""Activities a run uses to reach its team's budget: reserve, extend, commit usage, release.

Each one creates the TeamBudget workflow on first use (update-with-start / signal-with-start), so a
team that nobody configured still gets the org default and "no budget, no run" holds. A refused
reservation is an answer (granted=False with the reason), never an activity failure. Every call is
safe to retry: reserve is keyed by run id, extend by request id, commits by call id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from temporalio import activity
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.config import default_team_tokens, default_team_usd
from contracts.activities import BudgetCalls
from contracts.budget import (
    AdmissionInput,
    BudgetLimits,
    BudgetState,
    ReleaseInput,
    ReleaseOutcome,
    ReleaseRequest,
    Reservation,
    ReserveInput,
    ReserveOutcome,
    ReserveRequest,
    UsageCommit,
    UsageCommitInput,
    UsageCommitted,
)
from contracts.names import (
    COMMIT_USAGE,
    EXTEND,
    RELEASE,
    RELEASE_OF,
    REQUEST_ADMISSION,
    RESERVE,
    TEAM_BUDGET,
    budget_id,
)


def initial_state(team: str) -> BudgetState:
    """A team's budget before anyone configures it: the org default from the environment."""
    return BudgetState(team=team, limits=BudgetLimits(tokens=default_team_tokens(), usd=default_team_usd()))


def failure_message(error: WorkflowUpdateFailedError) -> str:
    """The validator's or handler's own sentence, not the SDK's wrapper text."""
    cause = error.cause
    return str(getattr(cause, "message", None) or cause or error)


class BudgetActivities(BudgetCalls):
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    def _start(self, team: str) -> WithStartWorkflowOperation[None, None]:
        # One operation per call: the SDK does not allow reusing it.
        return WithStartWorkflowOperation(
            TEAM_BUDGET,
            initial_state(team),
            id=budget_id(team),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def _signal_with_start(self, team: str, signal: str, arg: object) -> None:
        """Signal the team's budget, starting it on first use."""
        await self._client.start_workflow(
            TEAM_BUDGET,
            initial_state(team),
            id=budget_id(team),
            task_queue=self._task_queue,
            start_signal=signal,
            start_signal_args=[arg],
        )

    async def _admit(self, update: str, team: str, request: ReserveRequest, update_id: str) -> ReserveOutcome:
        """Update-with-start. Transient RPC errors (an update aborted near a continue-as-new) propagate,
        so Temporal retries the activity; the update id and the workflow's keys make the retry safe."""
        start = self._start(team)
        try:
            reservation = await self._client.execute_update_with_start_workflow(
                update, request, start_workflow_operation=start, id=update_id, result_type=Reservation
            )
        except WorkflowUpdateFailedError as refused:
            return ReserveOutcome(granted=False, reason=failure_message(refused))
        except RPCError:
            with contextlib.suppress(RPCError):
                await start.workflow_handle()  # the same error, read here so asyncio does not log it unread
            raise
        return ReserveOutcome(granted=True, reservation=reservation)

    @activity.defn
    async def reserve_budget(self, request: ReserveInput) -> ReserveOutcome:
        """Admission control: claim tokens/dollars for a run before it makes any model call."""
        body = ReserveRequest(run_id=request.run_id, tokens=request.tokens, usd=request.usd)
        return await self._admit(RESERVE, request.team, body, f"reserve:{request.run_id}")

    @activity.defn
    async def extend_budget(self, request: ReserveInput) -> ReserveOutcome:
        """A run part-way through asks for more; refused the same way as a reservation."""
        request_id = request.request_id or _retry_stable_id()
        body = ReserveRequest(run_id=request.run_id, tokens=request.tokens, usd=request.usd, request_id=request_id)
        return await self._admit(EXTEND, request.team, body, f"extend:{request.run_id}:{request_id}")

    @activity.defn
    async def request_admission(self, request: AdmissionInput) -> None:
        """Signal-with-start: no Update is in flight, so no limit on how many runs ask at once."""
        await self._signal_with_start(request.team, REQUEST_ADMISSION, request.request)

    @activity.defn
    async def release_budget(self, request: ReleaseInput) -> ReleaseOutcome:
        """Give back the unspent reservation, whatever the run's ending. Releasing twice is harmless.

        By signal (no cap on how many runs end at once), then the outcome is read back with a query.
        """
        handle = self._client.get_workflow_handle(budget_id(request.team))
        try:
            await handle.signal(RELEASE, ReleaseRequest(run_id=request.run_id))
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return ReleaseOutcome(run_id=request.run_id, released=False)  # no budget, nothing held
            raise
        delay = 0.05
        while True:  # the activity's timeout bounds this; a retry signals again, which changes nothing
            outcome: ReleaseOutcome | None = await handle.query(RELEASE_OF, request.run_id,
                                                                 result_type=_MAYBE_RELEASED)
            if outcome is not None:
                return outcome
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    @activity.defn
    async def commit_usage(self, usage: UsageCommitInput) -> UsageCommitted:
        """Meter one model call. Counts even past the run's reservation: what was spent was spent."""
        commit = UsageCommit(run_id=usage.run_id, call_id=usage.call_id, tokens=usage.tokens, usd=usage.usd)
        await self._signal_with_start(usage.team, COMMIT_USAGE, commit)
        return UsageCommitted(team=usage.team, call_id=usage.call_id)


# The query answers null until the release is taken; the converter needs the union spelled as a type.
_MAYBE_RELEASED = cast(type, ReleaseOutcome | None)


def _retry_stable_id() -> str:
    """An id that is the same on every retry of this activity (workflow run + activity id)."""
    info = activity.info()
    return f"{info.workflow_run_id}/{info.activity_id}"
