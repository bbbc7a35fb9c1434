"""Why a redelivered or duplicated delivery never starts a second run, in three layers.

1. The run of an issue has a deterministic workflow id (`spec2ship/<owner>/<repo>/issues/<n>`), started
   with `id_conflict_policy=USE_EXISTING`: a second start while the run is open joins the open run.
   `id_reuse_policy=ALLOW_DUPLICATE_FAILED_ONLY` keeps a closed run closed too, except one that failed,
   was cancelled or terminated, which a person may restart by adding the label again. This layer holds
   across webhook replicas, restarts and the factory schedule: it is the idempotency key.
2. Signals carry the delivery id as their request id, and updates (the comment commands) as their
   update id, so Temporal applies a delivery carried out twice (a drain restarted half-way) once.
3. In front of both: the spool keys each delivery by its `X-GitHub-Delivery` id, so a redelivery to the
   same replica is answered `duplicate` and not carried out again, for as long as the spool keeps
   finished deliveries (three days). Each replica has its own spool, hence layers 1 and 2.
"""

from __future__ import annotations

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.forge import ForgeKind, RepoRef
from contracts.names import spec_to_ship_id

START_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
START_REUSE_POLICY = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY


def issue_run_id(repo_full_name: str, issue_number: int) -> str:
    """The SpecToShip workflow id that owns `owner/repo#issue_number`."""
    return spec_to_ship_id(RepoRef(kind=ForgeKind.github, location=repo_full_name), "", issue_number)
