"""TeamBudget: one long-lived workflow per team that admits runs and meters what they spend.

Admission is an Update with a validator, so a refused run never enters history and the caller hears
why at once. Usage arrives as signals after each model call and always counts, even past a run's
reservation (reality wins): the overspend lowers what other runs can reserve.

Accounting identity, kept by every handler: free = limit - used - outstanding, where outstanding is
the unspent part of the open reservations. A grant needs free >= request, so runs that keep to their
reservation can never together exceed the limit.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.budget import (
        MAX_HISTORY,
        MAX_PROCESSED_KEYS,
        MAX_RELEASES,
        USD_TOLERANCE,
        AdmissionAnswer,
        AdmissionRequest,
        BudgetConfig,
        BudgetExceeded,
        BudgetState,
        BudgetView,
        ClosedPeriod,
        InvalidBudgetConfig,
        OpenReservation,
        ReleaseOutcome,
        ReleaseRequest,
        Reservation,
        ReservationClosed,
        ReserveRequest,
        Spend,
        UnknownReservation,
        UsageCommit,
    )
    from contracts.names import (
        ADMISSION,
        COMMIT_USAGE,
        CONFIGURE,
        EXTEND,
        RELEASE,
        RELEASE_OF,
        RELEASE_RESERVATION,
        REQUEST_ADMISSION,
        RESERVE,
        SHOW,
        TEAM_BUDGET,
    )
    from rules.budget_periods import period_end, period_label, period_start
    from workflows import metrics

# A floor on the period timer, so a clock exactly at the boundary cannot spin the loop.
_MIN_WAIT = timedelta(seconds=1)


@workflow.defn(name=TEAM_BUDGET)
class TeamBudget:
    @workflow.init
    def __init__(self, state: BudgetState) -> None:
        # Built here, not in run(): signals and updates that arrive with the start run before run().
        self._state = state.model_copy(deep=True)
        self._keys = set(self._state.processed_keys)
        self._wake = False

    @workflow.run
    async def run(self, state: BudgetState) -> None:
        while True:
            self._roll()
            start = self._current_start(workflow.now())
            wait = max(period_end(start, self._state.period) - workflow.now(), _MIN_WAIT)
            self._wake = False
            # A timeout means the period ended: the next turn of the loop closes it.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or workflow.info().is_continue_as_new_suggested(), timeout=wait
                )
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._roll()
                workflow.continue_as_new(self._state)

    # Admission.

    @workflow.update(name=RESERVE)
    def reserve(self, request: ReserveRequest) -> Reservation:
        # The validator ran in this same task with no await since, so refusals here only guard against change.
        answer = self._admit(request.run_id, request.tokens, request.usd)
        if answer.reservation is None:
            closed = self._released(request.run_id) is not None
            raise ReservationClosed(answer.reason) if closed else BudgetExceeded(answer.reason)
        return answer.reservation

    @reserve.validator
    def _validate_reserve(self, request: ReserveRequest) -> None:
        if request.run_id in self._state.reservations:
            return  # a repeated reserve answers with the existing reservation
        if self._released(request.run_id) is not None:
            raise ReservationClosed(self._closed(request.run_id))
        shortfall = self._shortfall(request.tokens, request.usd, self._used_now(), "")
        if shortfall:
            raise BudgetExceeded(shortfall)

    @workflow.update(name=EXTEND)
    def extend(self, request: ReserveRequest) -> Reservation:
        self._roll()
        existing = self._state.reservations.get(request.run_id)
        if existing is None:
            raise UnknownReservation(self._no_reservation(request.run_id))
        key = f"extend:{request.run_id}:{request.request_id}"
        if request.request_id and key in self._keys:
            return self._reservation(request.run_id, existing)
        shortfall = self._shortfall(request.tokens, request.usd, self._state.used, " more")
        if shortfall:
            raise BudgetExceeded(shortfall)
        if request.request_id:
            self._remember(key)
        existing.tokens += request.tokens
        existing.usd += request.usd
        return self._reservation(request.run_id, existing)

    @extend.validator
    def _validate_extend(self, request: ReserveRequest) -> None:
        if request.run_id not in self._state.reservations:
            raise UnknownReservation(self._no_reservation(request.run_id))
        if request.request_id and f"extend:{request.run_id}:{request.request_id}" in self._keys:
            return
        shortfall = self._shortfall(request.tokens, request.usd, self._used_now(), " more")
        if shortfall:
            raise BudgetExceeded(shortfall)

    @workflow.signal(name=REQUEST_ADMISSION)
    async def request_admission(self, request: AdmissionRequest) -> None:
        """Admission by signal, answered by signal: decided here, one request at a time, like `reserve`."""
        answer = self._admit(request.run_id, request.tokens, request.usd)
        try:
            await workflow.get_external_workflow_handle(request.reply_to).signal(ADMISSION, answer)
        except Exception as error:  # the run is gone (cancelled, terminated): its grant must not stay held
            workflow.logger.warning("admission answer for %s not delivered: %s", request.run_id, error)
            if answer.granted:
                self._release(request.run_id)

    def _admit(self, run_id: str, tokens: int, usd: float) -> AdmissionAnswer:
        """The one admission decision, for the Update and the signal alike."""
        self._roll()
        existing = self._state.reservations.get(run_id)
        if existing is not None:  # a repeated request answers with the reservation it already holds
            return AdmissionAnswer(run_id=run_id, granted=True, reservation=self._reservation(run_id, existing))
        if self._released(run_id) is not None:
            return AdmissionAnswer(run_id=run_id, granted=False, reason=self._closed(run_id))
        shortfall = self._shortfall(tokens, usd, self._state.used, "")
        if shortfall:
            return AdmissionAnswer(run_id=run_id, granted=False, reason=shortfall)
        granted = OpenReservation(tokens=tokens, usd=usd, reserved_at=workflow.now())
        self._state.reservations[run_id] = granted
        self._publish()
        return AdmissionAnswer(run_id=run_id, granted=True, reservation=self._reservation(run_id, granted))

    # Metering.

    @workflow.signal(name=COMMIT_USAGE)
    def commit_usage(self, commit: UsageCommit) -> None:
        self._roll()
        key = f"commit:{commit.call_id}"
        if key in self._keys:
            return
        self._remember(key)
        self._state.used.tokens += commit.tokens
        self._state.used.usd += commit.usd
        reservation = self._state.reservations.get(commit.run_id)
        if reservation is not None:
            reservation.used_tokens += commit.tokens
            reservation.used_usd += commit.usd
        self._publish()

    @workflow.signal(name=RELEASE)
    def release(self, request: ReleaseRequest) -> None:
        self._release(request.run_id)

    @workflow.update(name=RELEASE_RESERVATION)
    def release_reservation(self, request: ReleaseRequest) -> ReleaseOutcome:
        return self._release(request.run_id)

    def _release(self, run_id: str) -> ReleaseOutcome:
        self._roll()
        reservation = self._state.reservations.pop(run_id, None)
        if reservation is None:
            # Released before (a retry, or a duplicate across continue-as-new): the same answer again. A run
            # that never held one is remembered too, so `release_of` can tell "taken" from "not yet".
            earlier = self._released(run_id)
            if earlier is not None:
                return earlier
            nothing = ReleaseOutcome(run_id=run_id, released=False)
            self._remember_release(nothing)
            return nothing
        unspent = reservation.outstanding
        outcome = ReleaseOutcome(
            run_id=run_id,
            released=True,
            returned_tokens=unspent.tokens,
            returned_usd=unspent.usd,
            used_tokens=reservation.used_tokens,
            used_usd=reservation.used_usd,
        )
        self._remember_release(outcome)
        self._publish()
        return outcome

    def _remember_release(self, outcome: ReleaseOutcome) -> None:
        self._state.released.append(outcome)
        del self._state.released[:-MAX_RELEASES]

    @workflow.query(name=RELEASE_OF)
    def release_of(self, run_id: str) -> ReleaseOutcome | None:
        """The outcome of `run_id`'s release, or None while its RELEASE signal has not been taken yet."""
        return self._released(run_id)

    def _released(self, run_id: str) -> ReleaseOutcome | None:
        return next((done for done in reversed(self._state.released) if done.run_id == run_id), None)

    # Operators.

    @workflow.update(name=CONFIGURE)
    def configure(self, config: BudgetConfig) -> BudgetView:
        self._roll()
        if config.period is not self._state.period:
            # A new period length starts a fresh period now; the figures so far go to history.
            self._close_period(workflow.now())
            self._state.period = config.period
            self._state.period_start = period_start(workflow.now(), config.period)
        self._state.limits.tokens = config.tokens
        self._state.limits.usd = config.usd
        self._wake = True  # the period timer may have changed
        self._publish()
        return self.show()

    @configure.validator
    def _validate_configure(self, config: BudgetConfig) -> None:
        problems = config.problems()
        if problems:
            raise InvalidBudgetConfig(f"budget for team {self._state.team} not changed: {'; '.join(problems)}")

    @workflow.query(name=SHOW)
    def show(self) -> BudgetView:
        now = workflow.now()
        start = self._current_start(now)
        used = self._used_now()
        reserved = self._outstanding()
        limits = self._state.limits
        return BudgetView(
            team=self._state.team,
            period=self._state.period,
            period_start=start,
            period_end=period_end(start, self._state.period),
            limits=limits.model_copy(),
            used=used,
            reserved=reserved,
            free_tokens=None if limits.tokens is None else limits.tokens - used.tokens - reserved.tokens,
            free_usd=None if limits.usd is None else limits.usd - used.usd - reserved.usd,
            open_reservations=len(self._state.reservations),
            history=[closed.model_copy(deep=True) for closed in self._state.history],
        )

    # Bookkeeping.

    def _current_start(self, now: datetime) -> datetime:
        return period_start(now, self._state.period)

    def _used_now(self) -> Spend:
        """Usage in the period that contains now, without mutating state (validators and queries)."""
        if self._state.period_start != self._current_start(workflow.now()):
            return Spend()
        return self._state.used.model_copy()

    def _roll(self) -> None:
        """Start the period that contains now; a finished period's usage moves to history."""
        now = workflow.now()
        start = self._current_start(now)
        if self._state.period_start is None:
            self._state.period_start = start
        elif self._state.period_start != start:
            self._close_period(start)
            self._state.period_start = start
            self._state.used = Spend()
            # Open reservations carry over: their unspent part is held against the new period.

    def _close_period(self, end: datetime) -> None:
        if self._state.period_start is None:
            return
        self._state.history.append(
            ClosedPeriod(
                start=self._state.period_start,
                end=end,
                limits=self._state.limits.model_copy(),
                used=self._state.used.model_copy(),
            )
        )
        del self._state.history[:-MAX_HISTORY]
        self._state.used = Spend()

    def _publish(self) -> None:
        """The team's figures as gauges, after every change (silent during replay)."""
        view = self.show()
        metrics.budget(self._state.team, view.free_tokens, view.used.tokens)

    def _remember(self, key: str) -> None:
        self._keys.add(key)
        self._state.processed_keys.append(key)
        while len(self._state.processed_keys) > MAX_PROCESSED_KEYS:
            self._keys.discard(self._state.processed_keys.pop(0))

    def _outstanding(self) -> Spend:
        total = Spend()
        for reservation in self._state.reservations.values():
            unspent = reservation.outstanding
            total.tokens += unspent.tokens
            total.usd += unspent.usd
        return total

    def _shortfall(self, tokens: int, usd: float, used: Spend, more: str) -> str:
        """Why the team cannot cover this request, or "" when it can."""
        limits = self._state.limits
        reserved = self._outstanding()
        team = self._state.team
        when = period_label(self._state.period)
        reasons: list[str] = []
        if limits.tokens is not None:
            free = limits.tokens - used.tokens - reserved.tokens
            if free < tokens:
                reasons.append(
                    f"team {team} has {max(free, 0):,} tokens left of {limits.tokens:,} {when}; "
                    f"this run needs {tokens:,}{more}"
                )
        if limits.usd is not None:
            free_usd = limits.usd - used.usd - reserved.usd
            if free_usd + USD_TOLERANCE < usd:
                reasons.append(
                    f"team {team} has ${max(free_usd, 0.0):,.2f} left of ${limits.usd:,.2f} {when}; "
                    f"this run needs ${usd:,.2f}{more}"
                )
        return "; ".join(reasons)

    def _reservation(self, run_id: str, reservation: OpenReservation) -> Reservation:
        view = self.show()
        return Reservation(
            run_id=run_id,
            tokens=reservation.tokens,
            usd=reservation.usd,
            remaining_tokens=view.free_tokens,
            remaining_usd=view.free_usd,
            open_reservations=view.open_reservations,
        )

    def _closed(self, run_id: str) -> str:
        return (
            f"run {run_id} already released its reservation on team {self._state.team}'s budget; "
            "a finished run cannot reserve again (start a new run)"
        )

    def _no_reservation(self, run_id: str) -> str:
        return (
            f"run {run_id} holds no reservation on team {self._state.team}'s budget "
            "(never reserved, or already released); reserve before extending"
        )
