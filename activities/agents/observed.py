"""A model call with its telemetry: the GenAI span and metrics, the price, and the usage record."""

from __future__ import annotations

import os
from pathlib import Path

from temporalio import activity

from activities.agents.base import Provider
from activities.agents.pricing import cost_usd
from activities.agents.registry import Price
from activities.telemetry.genai import Redactor, model_call_span
from activities.telemetry.setup import Telemetry
from activities.telemetry.usage_log import UsageRecord, append_usage
from contracts import metrics
from contracts.agents import ModelRequest, ModelTurn
from rules.redact import environment_secrets, redact_shapes, redact_strings


async def observed_complete(
    provider: Provider,
    request: ModelRequest,
    *,
    request_model: str | None = None,
    price: Price | None = None,
    data_dir: Path | None = None,
    telemetry: Telemetry | None = None,
    redact: Redactor | None = None,
) -> ModelTurn:
    """One model call with everything around it: span, metrics, cost (from `price`) and a usage record.

    The convenience the `call_model` activity uses; each piece is also available on its own.
    `price` is a registry `Price`; when given and the provider left `cost_usd` at 0, it is priced here.
    """
    with model_call_span(request, provider.name, request_model=request_model, telemetry=telemetry,
                         redact=redact) as recorder:
        turn = await provider.complete(request)
        if not turn.provider:
            turn.provider = provider.name
        if price is not None and not turn.cost_usd:
            turn.cost_usd = cost_usd(turn.usage, price)
        recorder.record(turn)
    if data_dir is not None:
        append_usage(data_dir, UsageRecord.from_turn(request, turn))
    if activity.in_activity():
        count_spend(request, turn)
    return redacted_turn(turn)


def count_spend(request: ModelRequest, turn: ModelTurn) -> None:
    """Tokens and cost as Prometheus counters, through the Temporal runtime's metrics."""
    meter = activity.metric_meter()
    who = request.attribution
    labels = {"team": who.team, "service": who.service, "model": request.model, "role": who.role.value}
    tokens = meter.create_counter(metrics.MODEL_TOKENS.name, metrics.MODEL_TOKENS.help)
    tokens.add(turn.usage.input_tokens, {**labels, "direction": "input"})
    tokens.add(turn.usage.output_tokens, {**labels, "direction": "output"})
    meter.create_counter(metrics.MODEL_COST_MICRO_USD.name, metrics.MODEL_COST_MICRO_USD.help).add(
        round(turn.cost_usd * 1_000_000), labels)


def redacted_turn(turn: ModelTurn) -> ModelTurn:
    """The turn as it may enter workflow history: credential shapes and the worker's own secrets replaced in
    the text and in every tool call's arguments (a model can echo a secret from its prompt or invent one)."""
    known = environment_secrets(os.environ)
    message = turn.message.model_copy(update={
        "content": redact_shapes(turn.message.content, known),
        "tool_calls": [call.model_copy(update={"arguments": redact_strings(call.arguments, known)})
                       for call in turn.message.tool_calls],
    })
    return turn.model_copy(update={"message": message})
