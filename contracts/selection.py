"""Model evidence: what the ModelEvidence entity keeps per kind of change, and a selection."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.agents import Role

# Outcome keys the evidence entity remembers to make recording idempotent; older ones are forgotten.
MAX_REMEMBERED_KEYS = 2000


class ModelOutcome(BaseModel):
    """One model's part in one finished run: what the ModelEvidence workflow counts."""

    key: str = Field(description="Idempotency key: the run (workflow id and start time) and the role.")
    kind: str = Field(description="The kind of change (feature, bugfix, ...); evidence is kept per kind.")
    role: Role
    model: str
    success: bool
    cost_usd: float = Field(default=0.0, ge=0, description="What the run cost (all roles; per-role cost is not "
                            "recorded yet).")
    tokens: int = Field(default=0, ge=0)
    at: datetime


class ModelStat(BaseModel):
    """A model's record in one role on one kind of change."""

    role: Role
    model: str
    runs: int = 0
    successes: int = 0
    cost_usd: float = Field(default=0.0, description="Total over the runs.")
    tokens: int = 0
    last_at: datetime | None = None

    @property
    def failures(self) -> int:
        return self.runs - self.successes

    @property
    def mean_cost_usd(self) -> float:
        return self.cost_usd / self.runs if self.runs else 0.0


class EvidenceState(BaseModel):
    """The ModelEvidence workflow's whole state: its input, carried across continue-as-new."""

    kind: str
    stats: list[ModelStat] = Field(default_factory=list)
    recent_keys: list[str] = Field(default_factory=list, description="Keys of recorded outcomes (bounded), "
                                   "so a retried signal is counted once.")
    max_keys: int = Field(default=MAX_REMEMBERED_KEYS, ge=1)


class EvidenceStats(BaseModel):
    """The answer of the `stats` query."""

    kind: str
    runs: int = Field(description="Outcomes recorded (one per model and role of a run).")
    stats: list[ModelStat] = Field(default_factory=list)


class Selection(BaseModel):
    model: str
    explored: bool = Field(description="The draw picked another model than the best record would have.")
    reason: str
