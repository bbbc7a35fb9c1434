"""Calendar budget periods in UTC.

Pure functions so the workflow (which passes `workflow.now()`) and the tests share one definition of
"this month": a period starts at midnight UTC on the 1st (month), on Monday (week, ISO) or each day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.budget import BudgetPeriod


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, which is what Temporal's clock gives."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def period_start(moment: datetime, period: BudgetPeriod) -> datetime:
    """The start of the calendar period that contains `moment`."""
    midnight = _as_utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.day:
        return midnight
    if period is BudgetPeriod.week:
        return midnight - timedelta(days=midnight.weekday())
    return midnight.replace(day=1)


def period_end(start: datetime, period: BudgetPeriod) -> datetime:
    """The (exclusive) end of the period that begins at `start`: the next period's start."""
    start = period_start(start, period)
    if period is BudgetPeriod.day:
        return start + timedelta(days=1)
    if period is BudgetPeriod.week:
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def period_label(period: BudgetPeriod) -> str:
    """How messages name the current period ("this month")."""
    return {BudgetPeriod.day: "today", BudgetPeriod.week: "this week", BudgetPeriod.month: "this month"}[period]
