"""What the ServiceLedger keeps per run, and what it answers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class RunState(StrEnum):
    """Where a run ended (or waits). The CLI's `state` field uses these values."""

    running = "running"
    awaiting_human = "awaiting_human"
    merged = "merged"
    rejected = "rejected"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"
    commented = "commented"  # L1: agents only comment


class OutcomeRecord(BaseModel):
    """One finished run, as the ledger keeps it; trust and DORA figures are computed from these."""

    workflow_id: str
    service: str
    team: str
    spec_title: str
    kind: str
    state: RunState
    decision: str
    level: str
    reasons: list[str] = Field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    review_verdict: str = "none"
    human_verdicts: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict, description="role -> model")
    tokens: int = 0
    cost_usd: float = 0.0
    agent_made: bool = True
    first_commit_at: datetime | None = None
    started_at: datetime
    finished_at: datetime
    merge_sha: str | None = None


class LaterSignal(StrEnum):
    revert = "revert"
    incident = "incident"
    restored = "restored"


class LaterOutcome(BaseModel):
    """Something learned after the merge: a revert, an incident attributed to a merge sha."""

    kind: LaterSignal
    sha: str
    at: datetime
    note: str = ""
    reference: str | None = None


class TrustReport(BaseModel):
    service: str
    trust: float = Field(ge=0, le=1)
    runs: int
    successes: float
    explanation: list[str] = Field(default_factory=list)
