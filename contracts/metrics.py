"""spec2ship's own Prometheus metrics: names, what they mean, and their labels.

Workflows record them with `workflow.metric_meter()` (never during replay) and activities with
`activity.metric_meter()`; both go out through the Temporal runtime's Prometheus endpoint together with
the SDK's own metrics (`temporal_*`), on the port SPEC2SHIP_METRICS_PORT names. Counters are exported
with a `_total` suffix, durations in seconds. The Grafana dashboard in the Helm chart queries exactly
these names; a test checks each against a real scrape.
"""

from __future__ import annotations

from pydantic import BaseModel


class Metric(BaseModel):
    name: str
    kind: str  # counter, histogram, gauge
    help: str
    labels: tuple[str, ...]

    @property
    def exported(self) -> str:
        """The name a Prometheus scrape shows."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


RUNS = Metric(name="spec2ship_runs", kind="counter", help="Runs that ended, by state and gate decision",
              labels=("state", "decision", "service", "team"))
STAGE_SECONDS = Metric(name="spec2ship_stage_duration_seconds", kind="histogram",
                       help="How long each stage of a run took", labels=("stage",))
MODEL_TOKENS = Metric(name="spec2ship_model_tokens", kind="counter", help="Model tokens spent",
                      labels=("team", "service", "model", "role", "direction"))
MODEL_COST_MICRO_USD = Metric(name="spec2ship_model_cost_microusd", kind="counter",
                              help="Model spend in millionths of a US dollar",
                              labels=("team", "service", "model", "role"))
TRUST = Metric(name="spec2ship_trust", kind="gauge", help="A service's trust (Wilson lower bound)",
               labels=("service",))
BUDGET_TOKENS_LEFT = Metric(name="spec2ship_budget_tokens_left", kind="gauge",
                            help="Tokens a team has left this period (limit - used - reserved)", labels=("team",))
BUDGET_TOKENS_USED = Metric(name="spec2ship_budget_tokens_used", kind="gauge",
                            help="Tokens a team used this period", labels=("team",))
DORA_DEPLOYS_PER_WEEK = Metric(name="spec2ship_dora_deploys_per_week", kind="gauge",
                               help="Merges per week over the last 30 days", labels=("service", "origin"))
DORA_LEAD_TIME_SECONDS = Metric(name="spec2ship_dora_lead_time_seconds", kind="gauge",
                                help="Median lead time over the last 30 days", labels=("service", "origin"))
DORA_CHANGE_FAILURE_RATE = Metric(name="spec2ship_dora_change_failure_rate", kind="gauge",
                                  help="Share of merges later reverted or blamed for an incident (30 days)",
                                  labels=("service", "origin"))
DORA_TIME_TO_RESTORE_SECONDS = Metric(name="spec2ship_dora_time_to_restore_seconds", kind="gauge",
                                      help="Median time to restore after an incident (30 days)",
                                      labels=("service", "origin"))

ALL: list[Metric] = [RUNS, STAGE_SECONDS, MODEL_TOKENS, MODEL_COST_MICRO_USD, TRUST, BUDGET_TOKENS_LEFT,
                     BUDGET_TOKENS_USED, DORA_DEPLOYS_PER_WEEK, DORA_LEAD_TIME_SECONDS, DORA_CHANGE_FAILURE_RATE,
                     DORA_TIME_TO_RESTORE_SECONDS]
