"""What the ServiceLedger keeps per run, and what it answers (trust, DORA)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.runs import RunState


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
    requested_by: str = ""
    approved_by: str | None = Field(default=None, description="The person whose approval or override merged it.")


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
    """The service's trust and how it was reached; `rules/trust.py` holds the math."""

    service: str
    trust: float = Field(ge=0, le=1)
    runs: int
    successes: float = Field(description="Age-weighted successes (penalties for reverts/incidents count as runs).")
    explanation: list[str] = Field(default_factory=list)
    point_estimate: float = Field(default=0.0, ge=0, le=1, description="Weighted success rate before the bound.")
    n_eff: float = Field(default=0.0, ge=0, description="Age-discounted number of runs behind the estimate.")
    bar: float = Field(default=0.8, ge=0, le=1, description="The bar the explanation measures against.")
    merges_to_clear: int | None = Field(default=None, description="Fresh clean merges needed to reach the bar.")
    capped_until: datetime | None = Field(default=None, description="A recent incident holds trust at 0 until then.")
    as_of: datetime | None = None


class LaterOutcomeInput(BaseModel):
    service: str
    outcome: LaterOutcome


class ReadTrustInput(BaseModel):
    service: str
    bar: float | None = Field(default=None, ge=0, le=1, description="The policy's bar; None: the default 0.8.")


class TrustQuery(BaseModel):
    """Optional argument of the ledger's `trust` query: the bar "what would change the decision" aims at."""

    bar: float = Field(default=0.8, ge=0, le=1)


class EvictedMerge(BaseModel):
    """Enough of a folded-away merge to attribute a late revert or incident to it by sha."""

    day: date
    agent_made: bool
    failed: bool = False


class DayAggregate(BaseModel):
    """Runs and later outcomes of one day (per author kind), folded out of the ledger's recent list.

    Trust needs only counts per day (the decay is per day, so within a day the weight is the same);
    DORA needs counts and the distribution of lead and restore times, kept as log-scale histograms
    (bin -> count, see `rules/dora.py`): medians stay within a few percent.
    """

    day: date
    agent_made: bool | None = Field(description="Who made the changes; None: later outcomes of unknown merges.")
    runs: int = 0
    successes: float = 0.0
    merges: int = 0
    failed_changes: int = 0
    lead_time_bins: dict[int, int] = Field(default_factory=dict)
    penalties: int = 0
    incidents: int = 0
    restore_bins: dict[int, int] = Field(default_factory=dict)


class LedgerHistory(BaseModel):
    """Everything older than the ledger's recent lists, summarised so the state stays small."""

    days: list[DayAggregate] = Field(default_factory=list)
    evicted_keys: list[str] = Field(default_factory=list, description="Dedup keys of folded runs (bounded).")
    evicted_merges: dict[str, EvictedMerge] = Field(default_factory=dict, description="sha -> folded merge.")
    failed_shas: list[str] = Field(default_factory=list, description="Reverted/incident shas whose signal was folded.")
    folded_runs: int = 0
    folded_later: int = 0
    since: datetime | None = Field(default=None, description="Earliest time the history covers.")


class LedgerState(BaseModel):
    """The ServiceLedger's whole state: its input, carried across continue-as-new."""

    service: str
    outcomes: list[OutcomeRecord] = Field(default_factory=list, description="The most recent runs, oldest first.")
    later: list[LaterOutcome] = Field(default_factory=list, description="The most recent later outcomes.")
    history: LedgerHistory = Field(default_factory=LedgerHistory)
    max_outcomes: int = Field(default=500, ge=1)
    max_later: int = Field(default=500, ge=1)
    refresh_every: timedelta | None = Field(
        default=timedelta(hours=6),
        description="Wake this often so queries see a fresh workflow.now() (age decay); None: only when an "
        "incident's cap ends. Tests on the time-skipping server must terminate ledgers they leave running.",
    )


class DeployFrequency(StrEnum):
    """DORA's deployment-frequency buckets."""

    on_demand = "on_demand"  # daily or more often
    daily_weekly = "daily_weekly"  # between once a day and once a week
    weekly_monthly = "weekly_monthly"  # between once a week and once a month
    monthly_plus = "monthly_plus"  # less often than once a month


class DoraQuery(BaseModel):
    since: datetime | None = Field(default=None, description="Window start; default 30 days before `until`.")
    until: datetime | None = Field(default=None, description="Window end; default the ledger's now.")


class DoraKeys(BaseModel):
    """The four keys for one population of changes (agent-made, human-made, or all)."""

    merges: int = 0
    per_day: float = 0.0
    per_week: float = 0.0
    frequency: DeployFrequency = DeployFrequency.monthly_plus
    lead_time_median_s: float | None = None
    lead_time_samples: int = 0
    change_failure_rate: float | None = None
    failed_changes: int = 0
    time_to_restore_median_s: float | None = None
    restores: int = 0
    open_incidents: int = 0


class DoraReport(BaseModel):
    service: str
    since: datetime
    until: datetime
    all: DoraKeys
    agent: DoraKeys
    human: DoraKeys
    approximate: bool = Field(default=False, description="Part of the window came from summarised history.")
    notes: list[str] = Field(default_factory=list)
