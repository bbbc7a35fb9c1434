"""When the blobs of an agent run may go: the janitor's decision, apart from the store and Temporal."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class RunState(StrEnum):
    running = "running"
    closed = "closed"
    unknown = "unknown"  # Temporal no longer knows the workflow (its own retention removed it), or never did


class Verdict(StrEnum):
    remove = "remove"
    keep_running = "keep_running"
    keep_recent = "keep_recent"


def scope_verdict(state: RunState, closed_at: datetime | None, newest_blob: datetime | None, retention_s: float,
                  now: datetime) -> Verdict:
    """A running run keeps its blobs. A closed run's go once the retention period has passed since it closed.
    A run Temporal does not know is judged by its newest blob: an agent run writes one at every step, so a
    scope untouched for the whole retention period belongs to no live run."""
    keep_for = timedelta(seconds=retention_s)
    if state is RunState.running:
        return Verdict.keep_running
    since = closed_at if state is RunState.closed else newest_blob
    if since is None or since + keep_for <= now:
        return Verdict.remove
    return Verdict.keep_recent
