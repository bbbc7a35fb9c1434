"""The names workflows, activities and clients share: workflow types and ids, handler names,
search attributes. Spelled once, here, at the bottom of the dependency graph.
"""

from __future__ import annotations

import re

from temporalio.common import SearchAttributeKey

from contracts.forge import ForgeKind, RepoRef

SPEC_TO_SHIP = "SpecToShip"
AGENT_RUN = "AgentRun"
SERVICE_LEDGER = "ServiceLedger"
TEAM_BUDGET = "TeamBudget"
FACTORY_RUN = "FactoryRun"
MODEL_EVIDENCE = "ModelEvidence"
STORE_JANITOR = "StoreJanitor"
# The Schedule that starts StoreJanitor (created by `spec2ship setup` and `spec2ship up`).
STORE_JANITOR_SCHEDULE = "spec2ship-store-janitor"
PREVIEW_JANITOR = "PreviewJanitor"

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

# TeamBudget handlers.
RESERVE = "reserve"
EXTEND = "extend"
COMMIT_USAGE = "commit_usage"
RELEASE = "release"  # signal: workflows can signal another workflow, but cannot update one
RELEASE_RESERVATION = "release_reservation"  # update: the same, answered
CONFIGURE = "configure"
SHOW = "show"
RELEASE_OF = "release_of"  # query: the outcome of a run's release, once the budget has taken it
REQUEST_ADMISSION = "request_admission"  # signal: a run asks to be admitted; the answer comes back as ADMISSION
# SpecToShip's signal carrying its team budget's answer.
ADMISSION = "admission"

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
