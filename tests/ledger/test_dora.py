"""DORA's four keys from a ledger, against a hand-computed example."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.ledger import (
    DayAggregate,
    DeployFrequency,
    DoraQuery,
    LaterOutcome,
    LaterSignal,
    LedgerHistory,
    OutcomeRecord,
)
from contracts.runs import RunState
from rules.dora import bin_value, dora_report, frequency_bucket, time_bin, weighted_median

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def change(
    name: str,
    *,
    finished_days_ago: float,
    lead_hours: float,
    agent: bool = True,
    state: RunState = RunState.merged,
    first_commit_known: bool = True,
) -> OutcomeRecord:
    finished = NOW - timedelta(days=finished_days_ago)
    first_commit = finished - timedelta(hours=lead_hours)
    return OutcomeRecord(
        workflow_id=f"spec2ship/test/{name}",
        service="payments",
        team="core",
        spec_title=name,
        kind="feature",
        state=state,
        decision="merge",
        level="L4",
        agent_made=agent,
        first_commit_at=first_commit if first_commit_known else None,
        started_at=first_commit if not first_commit_known else first_commit - timedelta(minutes=5),
        finished_at=finished,
        merge_sha=name if state is RunState.merged else None,
    )


def event(kind: LaterSignal, sha: str, at: datetime) -> LaterOutcome:
    return LaterOutcome(kind=kind, sha=sha, at=at)


RECORDS = [
    change("a1", finished_days_ago=10, lead_hours=2),
    change("a2", finished_days_ago=5, lead_hours=4),
    change("a3", finished_days_ago=1, lead_hours=6, first_commit_known=False),
    change("r1", finished_days_ago=2, lead_hours=1, state=RunState.rejected),
    change("h1", finished_days_ago=3, lead_hours=24, agent=False),
    change("h0", finished_days_ago=20, lead_hours=1, agent=False),  # before the window
]
A2_INCIDENT = NOW - timedelta(days=5) + timedelta(hours=1)
LATER = [
    event(LaterSignal.incident, "a2", A2_INCIDENT),
    event(LaterSignal.restored, "a2", A2_INCIDENT + timedelta(hours=2)),
    event(LaterSignal.revert, "h1", NOW - timedelta(days=2)),
    event(LaterSignal.incident, "zzz", NOW - timedelta(days=1)),  # unknown merge, still open
]
WINDOW = DoraQuery(since=NOW - timedelta(days=14), until=NOW)


def test_agent_made_changes() -> None:
    keys = dora_report("payments", RECORDS, LATER, WINDOW, NOW).agent
    assert keys.merges == 3
    assert keys.per_day == pytest.approx(3 / 14)
    assert keys.per_week == pytest.approx(1.5)
    assert keys.frequency is DeployFrequency.daily_weekly
    assert keys.lead_time_median_s == pytest.approx(4 * HOUR)
    assert keys.change_failure_rate == pytest.approx(1 / 3)
    assert keys.failed_changes == 1
    assert keys.time_to_restore_median_s == pytest.approx(2 * HOUR)
    assert (keys.restores, keys.open_incidents) == (1, 0)


def test_human_made_changes() -> None:
    keys = dora_report("payments", RECORDS, LATER, WINDOW, NOW).human
    assert keys.merges == 1
    assert keys.per_week == pytest.approx(0.5)
    assert keys.frequency is DeployFrequency.weekly_monthly
    assert keys.lead_time_median_s == pytest.approx(24 * HOUR)
    assert keys.change_failure_rate == 1.0
    assert keys.time_to_restore_median_s is None
    assert keys.open_incidents == 0


def test_all_changes_together() -> None:
    report = dora_report("payments", RECORDS, LATER, WINDOW, NOW)
    keys = report.all
    assert keys.merges == 4
    assert keys.per_week == pytest.approx(2.0)
    assert keys.lead_time_median_s == pytest.approx(5 * HOUR)  # median of 2, 4, 6, 24 hours
    assert keys.lead_time_samples == 4
    assert keys.change_failure_rate == 0.5
    assert keys.time_to_restore_median_s == pytest.approx(2 * HOUR)
    assert keys.open_incidents == 1  # the incident on an unknown merge counts only here
    assert report.since == NOW - timedelta(days=14) and report.until == NOW
    assert report.approximate is False
    assert report.notes == ["1 merged changes had no first commit time; their lead time starts at the run"]


def test_the_window_defaults_to_the_last_30_days() -> None:
    report = dora_report("payments", RECORDS, LATER, DoraQuery(), NOW)
    assert report.since == NOW - timedelta(days=30)
    assert report.all.merges == 5  # h0 is 20 days old
    narrow = dora_report("payments", RECORDS, LATER, DoraQuery(since=NOW - timedelta(days=4)), NOW)
    assert narrow.all.merges == 2  # a3 and h1
    assert narrow.all.time_to_restore_median_s is None  # the a2 incident happened before the window
    assert narrow.all.open_incidents == 1


def test_an_empty_ledger_has_no_figures() -> None:
    keys = dora_report("payments", [], [], WINDOW, NOW).all
    assert keys.merges == 0 and keys.frequency is DeployFrequency.monthly_plus
    assert keys.lead_time_median_s is None and keys.change_failure_rate is None


def test_frequency_buckets_follow_dora() -> None:
    assert frequency_bucket(2) is DeployFrequency.on_demand
    assert frequency_bucket(1) is DeployFrequency.daily_weekly
    assert frequency_bucket(1 / 7) is DeployFrequency.daily_weekly
    assert frequency_bucket(1 / 8) is DeployFrequency.weekly_monthly
    assert frequency_bucket(1 / 30) is DeployFrequency.weekly_monthly
    assert frequency_bucket(1 / 31) is DeployFrequency.monthly_plus
    assert frequency_bucket(0) is DeployFrequency.monthly_plus


def test_weighted_median() -> None:
    assert weighted_median([]) is None
    assert weighted_median([(3.0, 1), (1.0, 1), (2.0, 1)]) == 2.0
    assert weighted_median([(1.0, 1), (10.0, 3)]) == 10.0
    assert weighted_median([(1.0, 2), (10.0, 2)]) == 5.5


@pytest.mark.parametrize("seconds", [1.0, 59.0, 3600.0, 5 * 86400.0, 200 * 86400.0])
def test_histogram_bins_keep_durations_within_nine_percent(seconds: float) -> None:
    # A quarter-octave bin's geometric centre is at most 2^(1/8) (9.05 %) away from anything in it.
    assert abs(bin_value(time_bin(seconds)) / seconds - 1) <= 2 ** (1 / 8) - 1 + 1e-12


def test_summarised_history_counts_in_its_window() -> None:
    day = (NOW - timedelta(days=40)).date()
    history = LedgerHistory(
        days=[
            DayAggregate(day=day, agent_made=True, merges=2, failed_changes=1, lead_time_bins={time_bin(HOUR): 2}),
            DayAggregate(day=date(2020, 1, 1), agent_made=True, merges=5),
        ]
    )
    report = dora_report("payments", [], [], DoraQuery(since=NOW - timedelta(days=60)), NOW, history=history)
    assert report.agent.merges == 2 and report.all.merges == 2 and report.human.merges == 0
    assert report.agent.change_failure_rate == 0.5
    assert report.agent.lead_time_median_s == pytest.approx(HOUR, rel=0.09)
    assert report.approximate is True
