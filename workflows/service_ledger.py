"""ServiceLedger: one long-lived workflow per service holding its outcomes, trust and DORA figures.

State lives in Temporal (no database): the run input is the whole state and continue-as-new
carries it. To keep that input small, the ledger keeps the most recent runs and later outcomes
(`max_outcomes`, `max_later`) and folds older ones into per-day aggregates (`LedgerHistory`) that
trust and DORA read alongside the recent lists. The folding functions below are pure and
deterministic, so the tests exercise them without a server.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.ledger import (
        DayAggregate,
        DoraQuery,
        DoraReport,
        EvictedMerge,
        LaterOutcome,
        LaterSignal,
        LedgerHistory,
        LedgerState,
        OutcomeRecord,
        TrustQuery,
        TrustReport,
    )
    from contracts.names import DORA, LEDGER_STATE, OUTCOMES, RECORD_LATER, RECORD_OUTCOME, SERVICE_LEDGER, TRUST
    from contracts.runs import RunState
    from rules.dora import dora_report, lead_time, time_bin
    from rules.trust import FAILURE_SIGNALS, TrustParams, as_utc, failed_shas, run_success, trust_report
    from workflows import metrics

# Bounds that keep the whole state (the continue-as-new input) well under Temporal's 2 MB payload
# limit: about 0.9 MB for a service merging every two hours for two years (measured, see the report).
HISTORY_RETENTION = timedelta(days=400)  # older days weigh < 2^-13 at a 30-day half-life
MAX_REMEMBERED = 2000  # folded run keys, folded merge shas, folded failure shas
INCIDENT_WINDOW = TrustParams().incident_window
METRICS_WINDOW = timedelta(days=30)  # the window of the DORA gauges


def outcome_key(record: OutcomeRecord) -> str:
    """Idempotency key of a run: a retried signal carries the same workflow id and start time.

    The start time is part of it because spec2ship's workflow ids are per spec: the same spec run
    again later is a new run under the same id and must count again.
    """
    return f"{record.workflow_id}@{as_utc(record.started_at).isoformat()}"


def later_key(item: LaterOutcome) -> str:
    return f"{item.kind.value}:{item.sha}@{as_utc(item.at).isoformat()}"


def _bucket(history: LedgerHistory, day: date, agent_made: bool | None) -> DayAggregate:
    for bucket in history.days:
        if bucket.day == day and bucket.agent_made is agent_made:
            return bucket
    created = DayAggregate(day=day, agent_made=agent_made)
    history.days.append(created)
    history.days.sort(key=lambda b: (b.day, {True: 0, False: 1, None: 2}[b.agent_made]))
    return created


def _remember(items: list[str], item: str) -> None:
    items.append(item)
    del items[: max(0, len(items) - MAX_REMEMBERED)]


def _author(state: LedgerState, sha: str) -> bool | None:
    for record in state.outcomes:
        if record.merge_sha == sha:
            return record.agent_made
    merge = state.history.evicted_merges.get(sha)
    return merge.agent_made if merge is not None else None


def add_outcome(state: LedgerState, record: OutcomeRecord) -> bool:
    """Add (or replace, for the same run) a record; fold the oldest when over the limit. True if new."""
    key = outcome_key(record)
    if key in state.history.evicted_keys:
        return False
    fresh = True
    for position, existing in enumerate(state.outcomes):
        if outcome_key(existing) == key:
            del state.outcomes[position]
            fresh = False
            break
    state.outcomes.append(record)
    state.outcomes.sort(key=lambda r: as_utc(r.finished_at))
    finished = as_utc(record.finished_at)
    if state.history.since is None or finished < as_utc(state.history.since):
        state.history.since = finished
    while len(state.outcomes) > state.max_outcomes:
        fold_outcome(state, state.outcomes.pop(0))
    return fresh


def fold_outcome(state: LedgerState, record: OutcomeRecord) -> None:
    """Move one run out of the recent list into its day's aggregate."""
    history = state.history
    finished = as_utc(record.finished_at)
    bucket = _bucket(history, finished.date(), record.agent_made)
    bad = failed_shas(state.later, history)
    value = run_success(record, bad)
    if value is not None:
        bucket.runs += 1
        bucket.successes += value
    if record.state is RunState.merged:
        failed = record.merge_sha is not None and record.merge_sha in bad
        bucket.merges += 1
        bucket.failed_changes += failed
        index = time_bin(lead_time(record).total_seconds())
        bucket.lead_time_bins[index] = bucket.lead_time_bins.get(index, 0) + 1
        if record.merge_sha is not None:
            history.evicted_merges[record.merge_sha] = EvictedMerge(
                day=finished.date(), agent_made=record.agent_made, failed=failed
            )
            while len(history.evicted_merges) > MAX_REMEMBERED:
                del history.evicted_merges[next(iter(history.evicted_merges))]
    _remember(history.evicted_keys, outcome_key(record))
    history.folded_runs += 1
    horizon = finished.date() - HISTORY_RETENTION
    history.days = [b for b in history.days if b.day >= horizon]


def add_later(state: LedgerState, item: LaterOutcome) -> bool:
    """Add a later outcome (idempotent); a failure of an already folded merge fixes its aggregate."""
    key = later_key(item)
    if any(later_key(existing) == key for existing in state.later):
        return False
    merge = state.history.evicted_merges.get(item.sha)
    if item.kind in FAILURE_SIGNALS and merge is not None and not merge.failed:
        merge.failed = True
        bucket = _bucket(state.history, merge.day, merge.agent_made)
        bucket.failed_changes += 1
        if merge.agent_made and bucket.runs:
            bucket.successes = max(bucket.successes - 1, 0.0)
    state.later.append(item)
    state.later.sort(key=lambda x: as_utc(x.at))
    while len(state.later) > state.max_later:
        fold_later(state, _oldest_foldable(state))
    return True


def _oldest_foldable(state: LedgerState) -> int:
    """The oldest later outcome that is not an unresolved incident (else simply the oldest)."""
    for position, item in enumerate(state.later):
        if item.kind is not LaterSignal.incident or _restore_position(state, position) is not None:
            return position
    return 0


def _restore_position(state: LedgerState, incident_position: int) -> int | None:
    incident = state.later[incident_position]
    for position in range(incident_position + 1, len(state.later)):
        other = state.later[position]
        if other.kind is LaterSignal.restored and other.sha == incident.sha:
            return position
    return None


def fold_later(state: LedgerState, position: int) -> None:
    """Move one later outcome into its day's aggregate; an incident takes its `restored` along."""
    history = state.history
    item = state.later[position]
    author = _author(state, item.sha)
    bucket = _bucket(history, as_utc(item.at).date(), author)
    if item.kind in FAILURE_SIGNALS:
        if item.sha not in history.failed_shas:
            _remember(history.failed_shas, item.sha)
        if author is not False:
            bucket.penalties += 1
    if item.kind is LaterSignal.incident:
        bucket.incidents += 1
        restored = _restore_position(state, position)
        if restored is not None:
            duration = max(as_utc(state.later[restored].at) - as_utc(item.at), timedelta(0))
            index = time_bin(duration.total_seconds())
            bucket.restore_bins[index] = bucket.restore_bins.get(index, 0) + 1
            del state.later[restored]
            history.folded_later += 1
    del state.later[position]
    history.folded_later += 1


@workflow.defn(name=SERVICE_LEDGER)
class ServiceLedger:
    """The entity workflow; the whole state is `LedgerState`, carried through continue-as-new."""

    @workflow.init
    def __init__(self, state: LedgerState) -> None:
        # Signals that arrive before the first task run before `run`: the state must exist already.
        self._state = state
        self._changed = False

    @workflow.run
    async def run(self, state: LedgerState) -> None:
        while not workflow.info().is_continue_as_new_suggested():
            self._changed = False
            try:
                # Queries see the time of the last workflow task. Waking up keeps it fresh: exactly when an
                # incident's cap ends, else every `refresh_every` (age decay); a new incident re-plans it.
                await workflow.wait_condition(
                    lambda: self._changed or workflow.info().is_continue_as_new_suggested(),
                    timeout=self._next_wake(),
                )
            except TimeoutError:
                continue
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._state)

    def _next_wake(self) -> timedelta | None:
        now = workflow.now()
        cap_ends = [
            as_utc(item.at) + INCIDENT_WINDOW
            for item in self._state.later
            if item.kind is LaterSignal.incident and as_utc(item.at) + INCIDENT_WINDOW > now
        ]
        waits = [end - now + timedelta(seconds=1) for end in cap_ends]
        if self._state.refresh_every is not None:
            waits.append(self._state.refresh_every)
        return min(waits, default=None)

    @workflow.signal(name=RECORD_OUTCOME)
    def record_outcome(self, record: OutcomeRecord) -> None:
        if record.service != self._state.service:
            workflow.logger.warning(
                "ignored an outcome for service %r sent to the ledger of %r (run %s)",
                record.service,
                self._state.service,
                record.workflow_id,
            )
            return
        add_outcome(self._state, record)
        self._publish()

    @workflow.signal(name=RECORD_LATER)
    def record_later(self, item: LaterOutcome) -> None:
        if add_later(self._state, item) and item.kind is LaterSignal.incident:
            self._changed = True  # only a new incident can bring the next wake-up forward
        self._publish()

    def _publish(self) -> None:
        """Trust and the four keys of the last 30 days as gauges (silent during replay)."""
        now = workflow.now()
        dora = self.dora(DoraQuery(since=now - METRICS_WINDOW, until=now))
        metrics.service_figures(self._state.service, self.trust().trust, dora)

    @workflow.query(name=TRUST)
    def trust(self, query: TrustQuery | None = None) -> TrustReport:
        """Callable with no argument (the default bar) or with the policy's bar."""
        return trust_report(
            self._state.service,
            self._state.outcomes,
            self._state.later,
            workflow.now(),
            bar=(query or TrustQuery()).bar,
            history=self._state.history,
        )

    @workflow.query(name=OUTCOMES)
    def outcomes(self) -> list[OutcomeRecord]:
        return list(self._state.outcomes)

    @workflow.query(name=DORA)
    def dora(self, query: DoraQuery) -> DoraReport:
        return dora_report(
            self._state.service,
            self._state.outcomes,
            self._state.later,
            query,
            workflow.now(),
            history=self._state.history,
        )

    @workflow.query(name=LEDGER_STATE)
    def ledger_state(self) -> LedgerState:
        return self._state
