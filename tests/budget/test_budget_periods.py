"""Calendar periods: every moment falls in exactly one period, and periods tile time without gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from contracts.budget import BudgetConfig, BudgetPeriod
from rules.budget_periods import period_end, period_label, period_start

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.sampled_from(list(BudgetPeriod)))
def test_a_moment_lies_in_its_period(moment: datetime, period: BudgetPeriod) -> None:
    start = period_start(moment, period)
    end = period_end(start, period)
    assert start <= moment < end
    assert period_start(end, period) == end, "the next period starts exactly where this one ends"
    assert period_start(end - timedelta(microseconds=1), period) == start


@given(moments)
def test_weeks_start_on_monday_and_months_on_the_first(moment: datetime) -> None:
    assert period_start(moment, BudgetPeriod.week).weekday() == 0
    assert period_start(moment, BudgetPeriod.month).day == 1
    assert period_start(moment, BudgetPeriod.day).time() == datetime.min.time()


def test_month_boundaries() -> None:
    december = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert period_start(december, BudgetPeriod.month) == datetime(2025, 12, 1, tzinfo=UTC)
    assert period_end(datetime(2025, 12, 1, tzinfo=UTC), BudgetPeriod.month) == datetime(2026, 1, 1, tzinfo=UTC)
    assert period_end(datetime(2024, 2, 1, tzinfo=UTC), BudgetPeriod.month) == datetime(2024, 3, 1, tzinfo=UTC)


def test_other_time_zones_and_naive_times_are_read_as_utc() -> None:
    # 00:30 on 1 March in UTC+2 is still 28 February in UTC.
    plus_two = datetime(2025, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_start(plus_two, BudgetPeriod.month) == datetime(2025, 2, 1, tzinfo=UTC)
    assert period_start(datetime(2025, 3, 5, 12), BudgetPeriod.day) == datetime(2025, 3, 5, tzinfo=UTC)


def test_labels_read_as_english() -> None:
    assert [period_label(p) for p in BudgetPeriod] == ["this month", "this week", "today"]


def test_config_problems_name_the_bad_number() -> None:
    assert BudgetConfig(tokens=0, usd=0.0).problems() == []
    assert BudgetConfig(tokens=None, usd=None).problems() == []
    assert BudgetConfig(tokens=-5, usd=-1.5).problems() == [
        "tokens must be 0 or more, got -5",
        "usd must be 0 or more, got -1.5",
    ]
    assert BudgetConfig(tokens=1, usd=float("nan")).problems() == ["usd must be 0 or more, got nan"]
