"""The public surface of the workflows: names, inputs, handler names and status models.

Clients (CLI, webhook, schedules, tests) import this module, never the workflow classes, so they
stay free of workflow code and the handler names are spelled in one place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

from activities.agents.base import AgentChoice
from activities.evidence.models import CheckStatus
from activities.forge.base import ForgeKind, PullRequest, RepoRef, SpecSource
from activities.ledger.models import RunState

SPEC_TO_SHIP = "SpecToShip"
AGENT_RUN = "AgentRun"
SERVICE_LEDGER = "ServiceLedger"
TEAM_BUDGET = "TeamBudget"
FACTORY_RUN = "FactoryRun"
MODEL_EVIDENCE = "ModelEvidence"

# Updates (validated, synchronous) and signals (fire-and-forget) share these names.
APPROVE = "approve"
REJECT = "reject"
REQUEST_CHANGES = "request_changes"
OVERRIDE = "override"
RETRY = "retry"
CANCEL = "cancel"
# Signals from the forge (webhook) about the outside world.
SPEC_CHANGED = "spec_changed"
PR_CLOSED = "pr_closed"
CI_COMPLETED = "ci_completed"
# Queries.
STATUS = "status"
TIMELINE = "timeline"
EVIDENCE = "evidence"
TOKENS = "tokens"
TOOL_CALLS = "tool_calls"
# ServiceLedger handlers.
RECORD_OUTCOME = "record_outcome"
RECORD_LATER = "record_later"
TRUST = "trust"
OUTCOMES = "outcomes"
DORA = "dora"
LEDGER_STATE = "ledger_state"
# ModelEvidence handlers.
RECORD_MODEL_OUTCOME = "record"
MODEL_STATS = "stats"

# Custom search attributes (Keyword), registered by `spec2ship up` and the test fixtures.
SA_STAGE = "Spec2shipStage"
SA_SERVICE = "Spec2shipService"
SA_TEAM = "Spec2shipTeam"
SA_DECISION = "Spec2shipDecision"
SA_STATE = "Spec2shipState"
SEARCH_ATTRIBUTES = [SA_STAGE, SA_SERVICE, SA_TEAM, SA_DECISION, SA_STATE]
STAGE_KEY = SearchAttributeKey.for_keyword(SA_STAGE)
SERVICE_KEY = SearchAttributeKey.for_keyword(SA_SERVICE)
TEAM_KEY = SearchAttributeKey.for_keyword(SA_TEAM)
DECISION_KEY = SearchAttributeKey.for_keyword(SA_DECISION)
STATE_KEY = SearchAttributeKey.for_keyword(SA_STATE)
SEARCH_ATTRIBUTE_KEYS = [STAGE_KEY, SERVICE_KEY, TEAM_KEY, DECISION_KEY, STATE_KEY]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def spec_to_ship_id(repo: RepoRef, spec_name: str, issue_number: int | None = None) -> str:
    """Readable, deterministic ids: the same spec on the same repo is one run (dedup for free)."""
    if repo.kind is ForgeKind.github and issue_number is not None:
        return f"spec2ship/{repo.location}/issues/{issue_number}"
    return f"spec2ship/{_slug(repo.display)}/{_slug(spec_name)}"


def ledger_id(service: str) -> str:
    return f"spec2ship-ledger/{service}"


def budget_id(team: str) -> str:
    return f"spec2ship-budget/{team}"


def model_evidence_id(kind: str) -> str:
    """One ModelEvidence workflow per kind of change (feature, bugfix, ...)."""
    return f"spec2ship-models/{_slug(kind)}"


class SpecToShipInput(BaseModel):
    repo: RepoRef
    spec: SpecSource
    agents: AgentChoice = Field(default_factory=AgentChoice)
    requested_by: str = "cli"
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

    @property
    def has_decision(self) -> bool:
        return self.state is not RunState.running
