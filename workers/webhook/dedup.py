"""Why a redelivered or duplicated delivery never starts a second run, in three layers.

1. The run of an issue has a deterministic workflow id (`spec2ship/<owner>/<repo>/issues/<n>`), started
   with `id_conflict_policy=USE_EXISTING`: a second start while the run is open joins the open run.
   `id_reuse_policy=ALLOW_DUPLICATE_FAILED_ONLY` keeps a closed run closed too, except one that failed,
   was cancelled or terminated, which a person may restart by adding the label again.
2. Updates (the comment commands) carry the delivery id as their update id, so Temporal applies a
   redelivered command once.
3. Best effort in front of both: an in-memory LRU of recent `X-GitHub-Delivery` ids answers a
   redelivery without touching Temporal. It is per process and forgets on restart, which is why it is
   only the first layer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.forge import ForgeKind, RepoRef
from contracts.names import spec_to_ship_id

START_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
START_REUSE_POLICY = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY


def issue_run_id(repo_full_name: str, issue_number: int) -> str:
    """The SpecToShip workflow id that owns `owner/repo#issue_number`."""
    return spec_to_ship_id(RepoRef(kind=ForgeKind.github, location=repo_full_name), "", issue_number)


class DeliveryLog:
    """The most recent delivery ids this process handled (bounded, thread-safe)."""

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"DeliveryLog capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, delivery_id: str) -> bool:
        with self._lock:
            if delivery_id in self._seen:
                self._seen.move_to_end(delivery_id)
                return True
            return False

    def remember(self, delivery_id: str) -> None:
        """Record a delivery once it was handled; one that failed is not remembered, so it can be redelivered."""
        with self._lock:
            self._seen[delivery_id] = None
            self._seen.move_to_end(delivery_id)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
