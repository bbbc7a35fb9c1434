"""Outcome records for the ledger tests: one team, one kind, merged at L4 unless a test says otherwise."""

from __future__ import annotations

from datetime import datetime

from contracts.ledger import OutcomeRecord
from contracts.runs import RunState


def outcome_record(
    workflow_id: str,
    service: str,
    number: int,
    finished: datetime,
    state: RunState,
    *,
    first_commit_at: datetime,
    started_at: datetime,
    merge_sha: str,
    agent_made: bool = True,
) -> OutcomeRecord:
    """A run of `service` that finished at `finished`; only a merged run keeps `merge_sha`."""
    return OutcomeRecord(
        workflow_id=workflow_id,
        service=service,
        team="core",
        spec_title=f"change {number}",
        kind="feature",
        state=state,
        decision="merge",
        level="L4",
        agent_made=agent_made,
        first_commit_at=first_commit_at,
        started_at=started_at,
        finished_at=finished,
        merge_sha=merge_sha if state is RunState.merged else None,
    )
