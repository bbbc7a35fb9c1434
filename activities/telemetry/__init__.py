"""OpenTelemetry set-up, GenAI spans and metrics, and the per-call cost ledger."""

from activities.telemetry.genai import model_call_span, tool_call_span
from activities.telemetry.setup import (
    Telemetry,
    current_telemetry,
    process_telemetry,
    setup_telemetry,
    temporal_tracing_interceptor,
    use_telemetry,
)
from activities.telemetry.usage_log import GroupBy, UsageRecord, UsageRow, aggregate, append_usage, read_usage

__all__ = [
    "GroupBy",
    "Telemetry",
    "UsageRecord",
    "UsageRow",
    "aggregate",
    "append_usage",
    "current_telemetry",
    "model_call_span",
    "process_telemetry",
    "read_usage",
    "setup_telemetry",
    "temporal_tracing_interceptor",
    "tool_call_span",
    "use_telemetry",
]
