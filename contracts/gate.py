"""The gate's policy (`.spec2ship/policy.yaml`), its input and its decision."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.evidence import CriterionResult, ReviewResult
from specs.models import AutonomyLevel

POLICY_PATH = ".spec2ship/policy.yaml"


class Decision(StrEnum):
    merge = "merge"
    escalate = "escalate"
    reject = "reject"
    comment_only = "comment_only"  # L1: agents only comment


class EscalationPolicy(BaseModel):
    remind_after: timedelta = timedelta(hours=4)
    escalate_after: timedelta = timedelta(hours=24)
    expire_after: timedelta = timedelta(days=7)
    owners: list[str] = Field(default_factory=list)


class ServicePolicy(BaseModel):
    autonomy: AutonomyLevel


class ProtectedPolicy(BaseModel):
    """`protected:` in the policy: paths whose change always waits for a person (activities.gate.protected)."""

    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(default_factory=list, description="More patterns to protect, e.g. deploy/**.")
    opt_out: list[str] = Field(default_factory=list, description="Default patterns this repository removes.")
    lock_files: bool = Field(default=False, description="Protect dependency lock files too.")
    owners: list[str] = Field(default_factory=list, description="Who decides; default: escalation.owners.")


class TestPolicy(BaseModel):
    """`tests:` in the policy: how the test-erosion check recognises test files beyond the conventions."""

    model_config = ConfigDict(extra="forbid")

    patterns: list[str] = Field(default_factory=list, description="More test-file globs, e.g. checks/**.")


class Policy(BaseModel):
    """`.spec2ship/policy.yaml` in the target repository."""

    default_autonomy: AutonomyLevel = AutonomyLevel.L3
    services: dict[str, ServicePolicy] = Field(default_factory=dict)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    trust_bar: float = Field(default=0.8, ge=0, le=1, description="L4 merges only at or above this trust.")
    max_review_rounds: int = Field(default=2, ge=0, le=10)
    merge_method: Literal["merge", "squash", "rebase"] = "merge"
    four_eyes: bool = Field(default=True, description="Whoever asked for a change cannot approve or override it.")
    delete_branches: bool = Field(
        default=True, description="Delete a PR's branch once it merged or closed. Never the default branch, nor "
        "one a person has checked out in the repository's main folder (the run's status says so instead).")
    protected: ProtectedPolicy = Field(default_factory=ProtectedPolicy)
    tests: TestPolicy = Field(default_factory=TestPolicy)

    @property
    def risk_owners(self) -> list[str]:
        """Who decides on a change to protected paths or tests: the policy's owners, never the requester's team."""
        return self.protected.owners or self.escalation.owners

    def level_for(self, service: str) -> AutonomyLevel:
        entry = self.services.get(service)
        return entry.autonomy if entry else self.default_autonomy


class GateDecision(BaseModel):
    decision: Decision
    level: AutonomyLevel
    reasons: list[str]
    trust: float | None = None
    score: float | None = None
    escalate_to: list[str] = Field(default_factory=list, description="Who must decide, when not the usual owners.")


class GateInput(BaseModel):
    level: AutonomyLevel
    criteria: list[CriterionResult]
    review: ReviewResult | None
    trust: float | None = None
    trust_bar: float = 0.8
    trust_explanation: list[str] = Field(default_factory=list)
    score: float | None = None
    score_result: str | None = None
    stop_reason: str | None = Field(default=None, description="Why the coder stopped early, if it did.")
    risk_owners: list[str] = Field(default_factory=list, description="Who decides on protected paths and tests.")


class ProtectedPattern(BaseModel):
    pattern: str
    group: str
    why: str


class RiskRules(BaseModel):
    """What the risk checks look for in one run, resolved from the base branch's policy."""

    protected: list[ProtectedPattern] = Field(default_factory=list)
    opted_out: list[str] = Field(default_factory=list, description="Defaults the policy removed, shown in reports.")
    test_patterns: list[str] = Field(default_factory=list, description="Test files beyond the usual conventions.")
