"""Trust: how far a service's track record lets agents merge without a human.

Everything here is pure: records, later outcomes and `now` in, a number (and its explanation) out.
The ServiceLedger answers its `trust` query with it; the gate compares the number with the bar.

The math
--------
1. Each agent-made run gets a success value s in [0, 1]:
   - merged (directly, or escalated and then approved by a human): 1;
   - rejected (by the checks, the review or a human) or failed: 0;
   - commented (L1, agents only comment): the share of its checks that passed (no checks: not counted);
   - running, awaiting a human, expired or cancelled: not counted, it says nothing either way;
   - a merge whose sha was later reverted or tied to an incident: 0, whatever it was before.
   Human-made changes are not counted: they say nothing about the agents.
2. Each revert or incident also counts as a fresh penalty: one more run with s = 0, dated when it
   happened, so it hurts as a new failure and not at the age of the merge it undid. (A later outcome
   tied to a known human-made merge adds no penalty.)
3. Weights decay with age: w = 2^(-(now - t) / half_life), t = when the run finished (or the
   penalty happened); a future t counts as age 0.
4. p = sum(w * s) / sum(w) is the weighted success rate (the point estimate), and
   n_eff = sum(w) is the age-discounted number of runs behind it.
5. trust = the Wilson score lower bound at z (1.645, one-sided 95 %) of p with n_eff trials:
       (p + z^2/2n - z * sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
   With every run clean this is n / (n + z^2): 3 fresh clean merges give 0.53, 11 give 0.80.
   No record at all (n = 0) gives 0.
6. Any incident on the service in the last K days (default 7) holds trust at 0 until K days have
   passed: one incident takes autonomy away at once, whoever made the change.

Why n_eff = sum(w) and not Kish's (sum w)^2 / sum(w^2): Kish's size measures the precision lost to
unequal *sampling* weights, so it shrinks when a fresh, heavy run joins an older, lighter record.
With it, one more clean merge after a quiet quarter lowers trust (100 clean runs at weight 0.1 give
n = 100 and 0.974; one fresh clean merge more gives n = 60.5 and 0.957). Sum(w) is the count with
exponential forgetting: it only grows with a new run, so trust is monotone in added successes and
a lower bound that never exceeds p (both are property-tested in tests/ledger/test_trust.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field

from contracts.ledger import LaterOutcome, LaterSignal, LedgerHistory, OutcomeRecord, TrustReport
from contracts.runs import RunState

DEFAULT_BAR = 0.8  # the gate's default bar (activities.gate.models.Policy.trust_bar)
FAILURE_SIGNALS = frozenset({LaterSignal.revert, LaterSignal.incident})
_SEARCH_LIMIT = 100_000


class TrustParams(BaseModel):
    """The knobs of the trust function; the defaults are the ledger's."""

    half_life: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    z: float = Field(default=1.645, gt=0, description="One-sided normal quantile of the lower bound.")
    incident_window: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))


@dataclass(frozen=True)
class Tally:
    """The weighted sums trust is computed from, plus the counts the explanation names."""

    n_eff: float = 0.0
    weighted_successes: float = 0.0
    runs: int = 0
    merged: int = 0
    undone: int = 0
    failed: int = 0
    penalties: int = 0
    capped_until: datetime | None = None
    capped_by: str | None = None

    @property
    def point_estimate(self) -> float:
        return self.weighted_successes / self.n_eff if self.n_eff > 0 else 0.0

    def with_fresh(self, successes: int = 0, failures: int = 0) -> Tally:
        """This tally plus runs that finished just now (weight 1): the what-if simulations use it."""
        return replace(
            self,
            n_eff=self.n_eff + successes + failures,
            weighted_successes=self.weighted_successes + successes,
        )


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so records from any source compare with the ledger's clock."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def decay(age: timedelta, half_life: timedelta) -> float:
    """w = 2^(-age / half_life); a negative age (clock skew, stale now) counts as fresh."""
    return 0.5 ** (max(age, timedelta(0)) / half_life)


def wilson_lower_bound(successes: float, n: float, z: float) -> float:
    """Wilson score lower bound for `successes` out of `n` (both may be fractional); 0 when n is 0."""
    if n <= 0:
        return 0.0
    p = min(max(successes / n, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    bound = (centre - margin) / (1 + z2 / n)
    return min(max(bound, 0.0), p)


def failed_shas(later: Iterable[LaterOutcome], history: LedgerHistory | None = None) -> set[str]:
    """Merge shas known to have been reverted or tied to an incident."""
    shas = {item.sha for item in later if item.kind in FAILURE_SIGNALS}
    if history is not None:
        shas.update(history.failed_shas)
    return shas


def run_success(record: OutcomeRecord, bad_shas: set[str]) -> float | None:
    """The run's success value in [0, 1], or None when the run says nothing about the agents."""
    if record.state is RunState.merged:
        return 0.0 if record.merge_sha is not None and record.merge_sha in bad_shas else 1.0
    if record.state in (RunState.rejected, RunState.failed):
        return 0.0
    if record.state is RunState.commented:
        checks = record.checks_passed + record.checks_failed
        return record.checks_passed / checks if checks else None
    return None


def _human_shas(records: Iterable[OutcomeRecord], history: LedgerHistory | None) -> set[str]:
    shas = {r.merge_sha for r in records if not r.agent_made and r.merge_sha is not None}
    if history is not None:
        shas.update(sha for sha, merge in history.evicted_merges.items() if not merge.agent_made)
    return shas


def tally(
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    now: datetime,
    params: TrustParams | None = None,
    history: LedgerHistory | None = None,
) -> Tally:
    """Steps 1-4 and 6 of the module docstring: the weighted sums and the incident cap."""
    params = params or TrustParams()
    now = as_utc(now)
    bad = failed_shas(later, history)
    n_eff = successes = 0.0
    runs = merged = undone = failed = penalties = 0
    for record in records:
        if not record.agent_made:
            continue
        value = run_success(record, bad)
        if value is None:
            continue
        weight = decay(now - as_utc(record.finished_at), params.half_life)
        n_eff += weight
        successes += weight * value
        runs += 1
        if record.state is RunState.merged:
            merged += 1
            undone += value == 0.0
        else:
            failed += value == 0.0
    human = _human_shas(records, history)
    capped_until: datetime | None = None
    capped_by: str | None = None
    for item in later:
        if item.kind not in FAILURE_SIGNALS:
            continue
        at = as_utc(item.at)
        if item.sha not in human:
            n_eff += decay(now - at, params.half_life)
            penalties += 1
        if item.kind is LaterSignal.incident and now - at < params.incident_window:
            until = at + params.incident_window
            if capped_until is None or until > capped_until:
                capped_until, capped_by = until, f"incident on {item.sha[:12]} at {at:%Y-%m-%d %H:%M} UTC"
    if history is not None:
        for bucket in history.days:
            weight = decay(now - (day_start(bucket.day) + timedelta(hours=12)), params.half_life)
            if bucket.agent_made is not False:  # penalties of agent-made or unknown merges
                n_eff += weight * bucket.penalties
                penalties += bucket.penalties
            if bucket.agent_made:
                n_eff += weight * bucket.runs
                successes += weight * bucket.successes
                runs += bucket.runs
                merged += bucket.merges
                undone += bucket.failed_changes
                failed += bucket.runs - bucket.merges
            until = day_start(bucket.day) + timedelta(days=1) + params.incident_window
            if bucket.incidents and until > now and (capped_until is None or until > capped_until):
                capped_until, capped_by = until, f"incident on {bucket.day} (summarised history)"
    return Tally(
        n_eff=n_eff,
        weighted_successes=successes,
        runs=runs,
        merged=merged,
        undone=undone,
        failed=failed,
        penalties=penalties,
        capped_until=capped_until,
        capped_by=capped_by,
    )


def bound(counts: Tally, params: TrustParams | None = None) -> float:
    """Step 5, without the cap: the Wilson lower bound of the tally."""
    params = params or TrustParams()
    return wilson_lower_bound(counts.weighted_successes, counts.n_eff, params.z)


def trust(
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    now: datetime,
    params: TrustParams | None = None,
    history: LedgerHistory | None = None,
) -> float:
    """The service's trust in [0, 1] at `now` (see the module docstring for the math)."""
    counts = tally(records, later, now, params, history)
    return 0.0 if counts.capped_until is not None else bound(counts, params)


def merges_to_clear(counts: Tally, bar: float, params: TrustParams | None = None) -> int | None:
    """How many fresh clean merges lift the bound to `bar`, found by simulating them; None if never.

    The bound is monotone in added successes, so a binary search over the simulated count is exact.
    The incident cap is left out: it lifts by itself when its window ends.
    """
    params = params or TrustParams()
    if bound(counts, params) >= bar:
        return 0
    if bar >= 1 or bound(counts.with_fresh(successes=_SEARCH_LIMIT), params) < bar:
        return None
    low, high = 0, _SEARCH_LIMIT  # bound(low) < bar <= bound(high)
    while high - low > 1:
        middle = (low + high) // 2
        if bound(counts.with_fresh(successes=middle), params) >= bar:
            high = middle
        else:
            low = middle
    return high


def explain(
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    now: datetime,
    bar: float = DEFAULT_BAR,
    params: TrustParams | None = None,
    history: LedgerHistory | None = None,
) -> list[str]:
    """Human lines: what was counted, the estimate, the bound, and what would change the decision."""
    params = params or TrustParams()
    now = as_utc(now)
    counts = tally(records, later, now, params, history)
    if counts.runs == 0 and counts.penalties == 0:
        lines = ["no record yet: no agent-made run has finished for this service"]
    else:
        half_life_days = params.half_life / timedelta(days=1)
        lines = [
            f"{counts.runs} runs counted: {counts.merged - counts.undone} clean merges, {counts.undone} merges "
            f"undone by a revert or incident, {counts.failed} rejected or failed; "
            f"{counts.penalties} revert/incident penalties",
            f"weighted successes {counts.weighted_successes:.2f} of n_eff {counts.n_eff:.2f} "
            f"(half-life {half_life_days:g} days): point estimate {counts.point_estimate:.3f}",
            f"Wilson lower bound at z={params.z:g}: {bound(counts, params):.3f}",
        ]
    value = trust(records, later, now, params, history)
    if counts.capped_until is not None:
        lines.append(f"held at 0 until {counts.capped_until:%Y-%m-%d %H:%M} UTC by the {counts.capped_by}")
    needed = merges_to_clear(counts, bar, params)
    if value >= bar:
        lines.append(f"trust {value:.3f} clears the bar {bar:.2f}")
        lines.extend(_incident_what_if(records, later, now, bar, params, history))
    elif needed is None:
        lines.append(f"trust {value:.3f} is below the bar {bar:.2f}, and no number of clean merges clears it")
    else:
        wait = "" if counts.capped_until is None else ", and the incident window must end first"
        lines.append(f"trust {value:.3f} is below the bar {bar:.2f}: {needed} more clean merges would clear it{wait}")
    return lines


def _incident_what_if(
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    now: datetime,
    bar: float,
    params: TrustParams,
    history: LedgerHistory | None,
) -> list[str]:
    incident = LaterOutcome(kind=LaterSignal.incident, sha="what-if", at=now)
    window_end = now + params.incident_window
    after = trust(records, [*later, incident], window_end, params, history)
    verdict = "still clears" if after >= bar else "is below"
    return [
        f"an incident now would hold trust at 0 until {window_end:%Y-%m-%d %H:%M} UTC, "
        f"then leave it at {after:.3f}, which {verdict} the bar"
    ]


def trust_report(
    service: str,
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    now: datetime,
    bar: float = DEFAULT_BAR,
    params: TrustParams | None = None,
    history: LedgerHistory | None = None,
) -> TrustReport:
    """The ledger's answer to the `trust` query."""
    params = params or TrustParams()
    counts = tally(records, later, now, params, history)
    return TrustReport(
        service=service,
        trust=trust(records, later, now, params, history),
        runs=counts.runs,
        successes=counts.weighted_successes,
        explanation=explain(records, later, now, bar, params, history),
        point_estimate=min(max(counts.point_estimate, 0.0), 1.0),
        n_eff=counts.n_eff,
        bar=bar,
        merges_to_clear=merges_to_clear(counts, bar, params),
        capped_until=counts.capped_until,
        as_of=as_utc(now),
    )
