"""StoreJanitor: one pass of the blob store's janitor, started by a Temporal Schedule every hour.

Agent runs keep their conversations and large tool results in the blob store under their own workflow
id; this removes the blobs of runs that finished more than the retention period ago. The report (what
was checked, removed, kept, and any problem) is the result, readable in the Temporal UI.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import StoreCalls
    from contracts.names import STORE_JANITOR
    from contracts.store import SweepReport, SweepStoreInput
    from workflows.options import SWEEP_STORE


@workflow.defn(name=STORE_JANITOR)
class StoreJanitor:
    @workflow.run
    async def run(self, request: SweepStoreInput) -> SweepReport:
        return await workflow.execute_activity_method(
            StoreCalls.sweep_store, request, **SWEEP_STORE, summary="remove blobs of finished agent runs")
