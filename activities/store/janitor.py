"""The store's janitor: remove the blobs of agent runs that finished more than the retention period ago.

Each scope is named by the workflow id of the agent run that wrote it; Temporal says whether that run is
still going and when it closed (rules/retention.py decides). It runs as the `sweep_store` activity of the
StoreJanitor workflow, which a Temporal Schedule starts every hour (`spec2ship setup`, `spec2ship up`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.store.base import BlobStore, StoreError
from contracts.store import SweepReport
from rules.retention import RunState, Verdict, scope_verdict

StateOf = Callable[[str], Awaitable[tuple[RunState, datetime | None]]]


def temporal_state(client: Client) -> StateOf:
    """Ask Temporal about a scope's workflow (the latest run of its id, so a continued run counts as one)."""

    async def state_of(workflow_id: str) -> tuple[RunState, datetime | None]:
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return RunState.unknown, None
            raise
        if described.status in (None, WorkflowExecutionStatus.RUNNING):
            return RunState.running, None
        return RunState.closed, described.close_time

    return state_of


async def sweep(store: BlobStore, state_of: StateOf, retention_s: float, now: datetime,
                progress: Callable[[str], None] = lambda _: None) -> SweepReport:
    """One pass over every scope; a scope that cannot be judged or removed is reported and left for the next."""
    report = SweepReport(swept_at=now)
    scopes = await asyncio.to_thread(store.scopes)
    for usage in scopes:
        report.checked += 1
        progress(usage.scope)
        try:
            state, closed_at = await state_of(usage.scope)
        except RPCError as error:
            report.problems.append(f"{usage.scope}: Temporal did not say whether it is finished: {error.message}")
            continue
        verdict = scope_verdict(state, closed_at, usage.newest, retention_s, now)
        if verdict is Verdict.keep_running:
            report.kept_running += 1
        elif verdict is Verdict.keep_recent:
            report.kept_recent += 1
        else:
            try:
                report.removed_blobs += await asyncio.to_thread(store.delete_scope, usage.scope)
            except StoreError as error:
                report.problems.append(f"{usage.scope}: {error}")
                continue
            report.removed.append(usage.scope)
    return report
