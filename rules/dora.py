"""DORA's four keys, computed from a service's ledger, for agent-made, human-made and all changes.

Definitions (DORA's, applied to what the ledger knows; a "deployment" is a merge, since a merged
change is what ships):
- deployment frequency: merges in the window per day and per week, and DORA's bucket
  (on demand: more than once a day; daily-weekly: at least weekly; weekly-monthly: at least once a
  month; monthly+: less often);
- lead time for changes: the median of merge time - first commit time (the run's start where the
  first commit time was not recorded, which overstates it by the time before the first commit);
- change failure rate: merged changes later tied to an incident or a revert / merged changes;
- time to restore: the median of restored.at - incident.at, pairing each incident with the first
  `restored` signal for the same sha at or after it (unpaired incidents are reported as open).
A change belongs to the window by its merge time, an incident by when it happened.

Runs folded out of the ledger's recent list live on as per-day aggregates whose lead and restore
times are kept as log-scale histograms (`time_bin`): medians from them are within ~9 %.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from contracts.ledger import (
    DayAggregate,
    DeployFrequency,
    DoraKeys,
    DoraQuery,
    DoraReport,
    LaterOutcome,
    LaterSignal,
    LedgerHistory,
    OutcomeRecord,
)
from contracts.runs import RunState
from rules.trust import as_utc, day_start, failed_shas

DEFAULT_WINDOW = timedelta(days=30)
BINS_PER_OCTAVE = 4


def time_bin(seconds: float) -> int:
    """The log-scale histogram bin of a duration (quarter octaves; anything under a second is bin 0)."""
    return math.floor(math.log2(max(seconds, 1.0)) * BINS_PER_OCTAVE)


def bin_value(index: int) -> float:
    """The bin's geometric centre, in seconds."""
    return float(2 ** ((index + 0.5) / BINS_PER_OCTAVE))


def weighted_median(samples: Iterable[tuple[float, int]]) -> float | None:
    """Median of values given with multiplicities (the mean of the two middle ones for an even count)."""
    ordered = sorted((value, count) for value, count in samples if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return None

    def at(position: int) -> float:
        seen = 0
        for value, count in ordered:
            seen += count
            if position < seen:
                return value
        return ordered[-1][0]

    if total % 2:
        return at(total // 2)
    return (at(total // 2 - 1) + at(total // 2)) / 2


def frequency_bucket(per_day: float) -> DeployFrequency:
    if per_day > 1:
        return DeployFrequency.on_demand
    if per_day * 7 >= 1:
        return DeployFrequency.daily_weekly
    if per_day * 30 >= 1:
        return DeployFrequency.weekly_monthly
    return DeployFrequency.monthly_plus


def lead_time(record: OutcomeRecord) -> timedelta:
    """Merge time - first commit time (the run's start when no first commit time was recorded)."""
    start = record.first_commit_at or record.started_at
    return max(as_utc(record.finished_at) - as_utc(start), timedelta(0))


class _Population:
    """Accumulates one population's samples; `keys()` turns them into DORA's four keys."""

    def __init__(self) -> None:
        self.merges = 0
        self.failed = 0
        self.lead: list[tuple[float, int]] = []
        self.restore: list[tuple[float, int]] = []
        self.open_incidents = 0

    def add_bucket(self, bucket: DayAggregate) -> None:
        self.merges += bucket.merges
        self.failed += bucket.failed_changes
        self.lead.extend((bin_value(index), count) for index, count in bucket.lead_time_bins.items())
        self.restore.extend((bin_value(index), count) for index, count in bucket.restore_bins.items())

    def keys(self, days: float) -> DoraKeys:
        per_day = self.merges / days if days > 0 else 0.0
        return DoraKeys(
            merges=self.merges,
            per_day=per_day,
            per_week=per_day * 7,
            frequency=frequency_bucket(per_day),
            lead_time_median_s=weighted_median(self.lead),
            lead_time_samples=sum(count for _, count in self.lead),
            change_failure_rate=self.failed / self.merges if self.merges else None,
            failed_changes=self.failed,
            time_to_restore_median_s=weighted_median(self.restore),
            restores=sum(count for _, count in self.restore),
            open_incidents=self.open_incidents,
        )


def _restores(later: Sequence[LaterOutcome]) -> list[tuple[LaterOutcome, LaterOutcome | None]]:
    """Each incident with the first `restored` for its sha at or after it (None while still open)."""
    ordered = sorted(later, key=lambda item: as_utc(item.at))
    used: set[int] = set()
    pairs: list[tuple[LaterOutcome, LaterOutcome | None]] = []
    for position, incident in enumerate(ordered):
        if incident.kind is not LaterSignal.incident:
            continue
        match: LaterOutcome | None = None
        for other_position in range(position + 1, len(ordered)):
            other = ordered[other_position]
            if other_position not in used and other.kind is LaterSignal.restored and other.sha == incident.sha:
                used.add(other_position)
                match = other
                break
        pairs.append((incident, match))
    return pairs


def dora_report(
    service: str,
    records: Sequence[OutcomeRecord],
    later: Sequence[LaterOutcome],
    query: DoraQuery,
    now: datetime,
    history: LedgerHistory | None = None,
) -> DoraReport:
    """The four keys over [since, until] for agent-made, human-made and all changes."""
    until = as_utc(query.until or now)
    since = as_utc(query.since) if query.since is not None else until - DEFAULT_WINDOW
    populations = {True: _Population(), False: _Population()}
    everyone = _Population()
    bad = failed_shas(later, history)
    author: dict[str, bool] = {}
    fallback_lead = 0
    for record in records:
        if record.merge_sha is not None:
            author[record.merge_sha] = record.agent_made
        if record.state is not RunState.merged or not since <= as_utc(record.finished_at) <= until:
            continue
        failed = record.merge_sha is not None and record.merge_sha in bad
        sample = (lead_time(record).total_seconds(), 1)
        fallback_lead += record.first_commit_at is None
        for population in (populations[record.agent_made], everyone):
            population.merges += 1
            population.failed += failed
            population.lead.append(sample)
    if history is not None:
        author.update({sha: merge.agent_made for sha, merge in history.evicted_merges.items()})
    for incident, restored in _restores(later):
        if not since <= as_utc(incident.at) <= until:
            continue
        made_by = author.get(incident.sha)
        targets = [everyone] if made_by is None else [everyone, populations[made_by]]
        for population in targets:
            if restored is None:
                population.open_incidents += 1
            else:
                duration = max(as_utc(restored.at) - as_utc(incident.at), timedelta(0))
                population.restore.append((duration.total_seconds(), 1))
    summarised = False
    if history is not None:
        for bucket in history.days:
            if not since <= day_start(bucket.day) + timedelta(hours=12) <= until:
                continue
            summarised = True
            everyone.add_bucket(bucket)
            if bucket.agent_made is not None:
                populations[bucket.agent_made].add_bucket(bucket)
    notes: list[str] = []
    if fallback_lead:
        notes.append(f"{fallback_lead} merged changes had no first commit time; their lead time starts at the run")
    if summarised:
        notes.append("part of the window comes from summarised history: its medians are histogram estimates")
    if history is not None and history.since is not None and since < as_utc(history.since):
        notes.append(f"the ledger's first record is from {as_utc(history.since):%Y-%m-%d}, after the window's start")
    days = (until - since) / timedelta(days=1)
    return DoraReport(
        service=service,
        since=since,
        until=until,
        all=everyone.keys(days),
        agent=populations[True].keys(days),
        human=populations[False].keys(days),
        approximate=summarised,
        notes=notes,
    )
