"""Recording spec2ship's metrics from workflow code: through `workflow.metric_meter()`, which the SDK
leaves silent during replay, so a replayed run never counts twice."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import metrics
    from contracts.ledger import DoraKeys, DoraReport


P = ParamSpec("P")


def never_fails(record: Callable[P, None]) -> Callable[P, None]:
    """A metric that cannot be recorded is logged, never a failed workflow task: figures are not the work."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as error:
            workflow.logger.warning("metric %s not recorded: %s", record.__name__, error)

    return guarded


@never_fails
def run_ended(state: str, decision: str, service: str, team: str) -> None:
    workflow.metric_meter().create_counter(metrics.RUNS.name, metrics.RUNS.help).add(
        1, {"state": state, "decision": decision, "service": service, "team": team})


@never_fails
def stage_took(stage: str, took: timedelta) -> None:
    workflow.metric_meter().create_histogram_float(
        metrics.STAGE_SECONDS.name, metrics.STAGE_SECONDS.help, "s").record(took.total_seconds(), {"stage": stage})


@never_fails
def budget(team: str, left: int | None, used: int) -> None:
    meter = workflow.metric_meter()
    if left is not None:
        meter.create_gauge(metrics.BUDGET_TOKENS_LEFT.name, metrics.BUDGET_TOKENS_LEFT.help).set(left, {"team": team})
    meter.create_gauge(metrics.BUDGET_TOKENS_USED.name, metrics.BUDGET_TOKENS_USED.help).set(used, {"team": team})


@never_fails
def service_figures(service: str, trust: float, dora: DoraReport) -> None:
    meter = workflow.metric_meter()
    meter.create_gauge_float(metrics.TRUST.name, metrics.TRUST.help).set(trust, {"service": service})
    gauges: list[tuple[metrics.Metric, Callable[[DoraKeys], float | None]]] = [
        (metrics.DORA_DEPLOYS_PER_WEEK, lambda keys: keys.per_week),
        (metrics.DORA_LEAD_TIME_SECONDS, lambda keys: keys.lead_time_median_s),
        (metrics.DORA_CHANGE_FAILURE_RATE, lambda keys: keys.change_failure_rate),
        (metrics.DORA_TIME_TO_RESTORE_SECONDS, lambda keys: keys.time_to_restore_median_s),
    ]
    for metric, read in gauges:
        gauge = meter.create_gauge_float(metric.name, metric.help)
        for origin, keys in (("all", dora.all), ("agent", dora.agent), ("human", dora.human)):
            value = read(keys)
            if value is not None:
                gauge.set(float(value), {"service": service, "origin": origin})
