"""Team budgets: the TeamBudget entity's state, its requests and answers, and why it says no."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

USD_TOLERANCE = 1e-9
MAX_PROCESSED_KEYS = 4096
MAX_HISTORY = 24
MAX_RELEASES = 512


class BudgetPeriod(StrEnum):
    month = "month"
    week = "week"
    day = "day"


class BudgetLimits(BaseModel):
    tokens: int | None = Field(default=None, description="Tokens per period; None: no token cap.")
    usd: float | None = Field(default=None, description="US dollars per period; None: no USD cap.")


class Spend(BaseModel):
    tokens: int = 0
    usd: float = 0.0


class OpenReservation(BaseModel):
    """A run's claim on the budget, and what the run has spent against it so far."""

    tokens: int
    usd: float
    used_tokens: int = 0
    used_usd: float = 0.0
    reserved_at: datetime

    @property
    def outstanding(self) -> Spend:
        """The part of the claim not yet spent: what others cannot reserve. Overspend counts as zero here
        because it is already in the team's `used`."""
        return Spend(tokens=max(0, self.tokens - self.used_tokens), usd=max(0.0, self.usd - self.used_usd))


class ClosedPeriod(BaseModel):
    start: datetime
    end: datetime
    limits: BudgetLimits
    used: Spend


class ReleaseOutcome(BaseModel):
    run_id: str
    released: bool = Field(description="False when the run never held a reservation (that this budget remembers).")
    returned_tokens: int = 0
    returned_usd: float = 0.0
    used_tokens: int = 0
    used_usd: float = 0.0


class BudgetState(BaseModel):
    """The whole entity, carried in the run input so continue-as-new keeps it."""

    team: str = Field(min_length=1)
    limits: BudgetLimits
    period: BudgetPeriod = BudgetPeriod.month
    period_start: datetime | None = Field(default=None, description="Set on the first handler or timer.")
    used: Spend = Field(default_factory=Spend)
    reservations: dict[str, OpenReservation] = Field(default_factory=dict, description="run_id -> reservation")
    processed_keys: list[str] = Field(
        default_factory=list, description=f"Idempotency keys, oldest first, at most {MAX_PROCESSED_KEYS}."
    )
    history: list[ClosedPeriod] = Field(default_factory=list, description=f"At most {MAX_HISTORY}, oldest first.")
    released: list[ReleaseOutcome] = Field(
        default_factory=list,
        description=f"The last {MAX_RELEASES} releases: a repeated release answers the same, and a late "
        "duplicate reserve for a finished run cannot open a claim nobody will release.",
    )


class ReserveRequest(BaseModel):
    run_id: str = Field(min_length=1)
    tokens: int = Field(default=0, ge=0)
    usd: float = Field(default=0.0, ge=0)
    request_id: str = Field(
        default="",
        description="Deduplicates `extend` (a retried extend must not grow the claim twice); "
        "`reserve` is deduplicated by run_id.",
    )


class Reservation(BaseModel):
    """A granted claim. `remaining_*` is what the team has left for others after it (None: no cap)."""

    run_id: str
    tokens: int
    usd: float
    remaining_tokens: int | None
    remaining_usd: float | None
    open_reservations: int = Field(default=0, description="Runs holding a reservation at grant time, this one too.")


class UsageCommit(BaseModel):
    run_id: str = Field(min_length=1)
    call_id: str = Field(min_length=1, description="One model call; commits are deduplicated by it.")
    tokens: int = Field(ge=0)
    usd: float = Field(default=0.0, ge=0)


class ReleaseRequest(BaseModel):
    run_id: str = Field(min_length=1)


class BudgetConfig(BaseModel):
    """An operator's budget for a team. It replaces the limits and the period; missing caps mean none.

    Numbers are not constrained here so that the workflow's validator (and the CLI, through
    `problems`) can answer with a sentence rather than a pydantic error.
    """

    tokens: int | None = None
    usd: float | None = None
    period: BudgetPeriod = BudgetPeriod.month

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.tokens is not None and self.tokens < 0:
            found.append(f"tokens must be 0 or more, got {self.tokens:,}")
        if self.usd is not None and not self.usd >= 0:
            found.append(f"usd must be 0 or more, got {self.usd}")
        return found


class BudgetView(BaseModel):
    team: str
    period: BudgetPeriod
    period_start: datetime
    period_end: datetime
    limits: BudgetLimits
    used: Spend
    reserved: Spend = Field(description="Reserved by open runs and not yet spent.")
    free_tokens: int | None = Field(description="limit - used - reserved; negative when overspent; None: no cap.")
    free_usd: float | None
    open_reservations: int
    history: list[ClosedPeriod] = Field(default_factory=list)


class ReserveInput(BaseModel):
    team: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    tokens: int = Field(default=0, ge=0)
    usd: float = Field(default=0.0, ge=0)
    request_id: str = Field(default="", description="For extend; the activity derives one when empty.")


class ReserveOutcome(BaseModel):
    """A refusal is an answer, not a failure: the run reports `reason` and stops."""

    granted: bool
    reservation: Reservation | None = None
    reason: str = ""


class AdmissionRequest(BaseModel):
    """A run asking its team's budget for a reservation; the answer is signalled back to `reply_to`.

    Signals, unlike Updates, have no cap on how many may be in flight at once, and the budget takes
    every request that arrived since its last workflow task in one batch: hundreds of runs of one team
    can ask at the same moment. Each decision is still made one at a time, in the entity.
    """

    run_id: str = Field(min_length=1)
    tokens: int = Field(default=0, ge=0)
    usd: float = Field(default=0.0, ge=0)
    reply_to: str = Field(min_length=1, description="The workflow id the answer is signalled to.")


class AdmissionInput(BaseModel):
    team: str = Field(min_length=1)
    request: AdmissionRequest


class AdmissionAnswer(BaseModel):
    run_id: str
    granted: bool
    reservation: Reservation | None = None
    reason: str = ""


class ReleaseInput(BaseModel):
    team: str = Field(min_length=1)
    run_id: str = Field(min_length=1)


class UsageCommitInput(BaseModel):
    team: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    call_id: str = Field(min_length=1)
    tokens: int = Field(ge=0)
    usd: float = Field(default=0.0, ge=0)


class UsageCommitted(BaseModel):
    team: str
    call_id: str


class BudgetExceeded(ApplicationError):
    """The team cannot cover the request: wait for the next period or ask for a larger budget."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="BudgetExceeded", non_retryable=True)


class UnknownReservation(ApplicationError):
    """An extend for a run that holds no reservation (never reserved, or already released)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="UnknownReservation", non_retryable=True)


class ReservationClosed(ApplicationError):
    """A reserve for a run that already released: a late duplicate, or a run id reused by mistake."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="ReservationClosed", non_retryable=True)


class InvalidBudgetConfig(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="InvalidBudgetConfig", non_retryable=True)
