"""The store's activity: the janitor's sweep, on the shared CPU queue (every CPU worker has the store)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client

from activities.config import StoreSettings
from activities.store import BlobStore, StoreError, store_failure
from activities.store.janitor import sweep, temporal_state
from contracts.activities import StoreCalls
from contracts.store import SweepReport, SweepStoreInput


class StoreActivities(StoreCalls):
    """Holds the store and a Temporal client (to ask whether a scope's run is finished)."""

    def __init__(self, store: BlobStore, client: Client, retention_s: float | None = None) -> None:
        self._store = store
        self._client = client
        self._retention_s = retention_s

    @activity.defn(name="sweep_store")
    async def sweep_store(self, request: SweepStoreInput) -> SweepReport:
        retention = request.retention_s
        if retention is None:
            retention = self._retention_s if self._retention_s is not None else StoreSettings.from_env().retention_s
        try:
            report = await sweep(self._store, temporal_state(self._client), retention, datetime.now(UTC),
                                 progress=activity.heartbeat)
        except StoreError as error:
            raise store_failure(error) from error
        activity.logger.info("store janitor: %d scope(s) checked, %d removed (%d blobs), %d problem(s)",
                             report.checked, len(report.removed), report.removed_blobs, len(report.problems))
        return report
