"""A run of SpecToShip as its clients see it: its input, how people steer it, and its status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.agents import AgentChoice
from contracts.evidence import CheckStatus
from contracts.forge import PullRequest, RepoRef, SpecSource


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
    # Set by clients for a workflow that closed without saying how (terminated, timed out): never by the run.
    terminated = "terminated"
    timed_out = "timed_out"


class SpecToShipInput(BaseModel):
    repo: RepoRef
    spec: SpecSource
    agents: AgentChoice = Field(default_factory=AgentChoice)
    requested_by: str = Field(default="cli", description="Who asked for the change; four eyes keeps them from "
                                                         "approving it.")
    issue_number: int | None = Field(default=None, description="The GitHub issue the spec came from.")
    max_review_rounds: int | None = Field(default=None, description="Overrides the policy's value.")


class HumanAction(BaseModel):
    """A person steering a run: who, and why (always recorded)."""

    actor: str = Field(min_length=1)
    reason: str = ""
    decision: Literal["merge", "reject"] | None = Field(default=None, description="For override only.")


class ForgeEvent(BaseModel):
    """Something the forge told us (PR closed elsewhere, CI finished, spec edited)."""

    kind: Literal["pr_closed", "ci_completed", "spec_changed"]
    merged: bool = False
    conclusion: str | None = None
    head_sha: str | None = None
    name: str = ""
    actor: str = ""
    url: str | None = None


class StageRecord(BaseModel):
    stage: str
    started_at: datetime
    ended_at: datetime | None = None
    result: str = ""


class CheckSummary(BaseModel):
    id: str
    status: CheckStatus


class RunStatus(BaseModel):
    workflow_id: str
    state: RunState
    stage: str
    spec_title: str = ""
    service: str = ""
    team: str = ""
    decision: str | None = None
    reasons: list[str] = Field(default_factory=list)
    checks: list[CheckSummary] = Field(default_factory=list)
    pr: PullRequest | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    round: int = 0
    awaiting_human_since: datetime | None = None
    human_actions: list[str] = Field(default_factory=list)
    requested_by: str = ""

    @property
    def has_decision(self) -> bool:
        return self.state is not RunState.running
