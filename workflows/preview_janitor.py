"""PreviewJanitor: one sweep for previews that outlived their TTL, started by a Temporal Schedule.

Every run tears its preview down on every ending, and a restarted worker reaps what it left; the
janitor catches the rest (a worker that never came back, a teardown the cluster refused). What it
removed, and what it could not, is the workflow's result, readable in the Temporal UI.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.activities import PreviewCalls
    from contracts.names import PREVIEW_JANITOR

# Deleting releases and namespaces takes a while on a busy cluster; a failed sweep is retried next interval.
SWEEP_TIMEOUT = timedelta(minutes=10)
SWEEP_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=10))


@workflow.defn(name=PREVIEW_JANITOR)
class PreviewJanitor:
    @workflow.run
    async def run(self) -> list[str]:
        return await workflow.execute_activity_method(
            PreviewCalls.reap_previews, start_to_close_timeout=SWEEP_TIMEOUT,
            retry_policy=SWEEP_RETRY, summary="remove previews past their TTL")
