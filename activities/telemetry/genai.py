"""GenAI semantic conventions on every model and tool call, with spec2ship's attribution.

Spans are named `{operation} {model}` / `execute_tool {tool}` and carry `gen_ai.*` attributes; the
`gen_ai.client.token.usage` and `gen_ai.client.operation.duration` histograms use the conventions'
bucket boundaries. Attribution (team, service, spec, workflow id, role) is on every span, and the
low-cardinality part of it (team, service, role) on the metrics, so cost is answered per team,
service, model and role. Prompt and completion text is recorded only when SPEC2SHIP_RECORD_CONTENT
is true, and then only after the redaction hook and the secret scrubber.
"""

from __future__ import annotations

import json
import os
import re
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from temporalio import activity

from activities.telemetry.setup import INSTRUMENTATION_NAME, Telemetry, current_telemetry
from contracts.agents import Attribution, Message, ModelRequest, ModelTurn, Role

Redactor = Callable[[str], str]

RECORD_CONTENT_ENV = "SPEC2SHIP_RECORD_CONTENT"
OPERATION_CHAT = "chat"
OPERATION_EXECUTE_TOOL = "execute_tool"
TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
TOKEN_USAGE_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)

ATTR_TEAM = "spec2ship.team"
ATTR_SERVICE = "spec2ship.service"
ATTR_SPEC = "spec2ship.spec"
ATTR_WORKFLOW_ID = "spec2ship.workflow_id"
ATTR_ROLE = "spec2ship.role"
ATTR_KIND = "spec2ship.kind"
ATTR_COST_USD = "spec2ship.cost_usd"

_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]{12,}"),
)
_SECRET_ENV_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def record_content_enabled() -> bool:
    return os.environ.get(RECORD_CONTENT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def scrub_secrets(text: str) -> str:
    """Mask well-known key shapes and the values of secret-looking environment variables."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_ENV_NAME.search(name):
            text = text.replace(value, "[REDACTED]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("[REDACTED]", text)
    return text


def attribution_attributes(attribution: Attribution) -> dict[str, str]:
    return {
        ATTR_TEAM: attribution.team,
        ATTR_SERVICE: attribution.service,
        ATTR_SPEC: attribution.spec,
        ATTR_WORKFLOW_ID: attribution.workflow_id,
        ATTR_ROLE: str(attribution.role),
        ATTR_KIND: attribution.kind,
    }


def _metric_attribution(attribution: Attribution) -> dict[str, str]:
    # spec and workflow id would make a time series per run: they stay on spans only.
    return {ATTR_TEAM: attribution.team, ATTR_SERVICE: attribution.service, ATTR_ROLE: str(attribution.role)}


class GenAIInstruments:
    """The two client histograms, created once per meter (OTel warns on duplicates)."""

    _cache: weakref.WeakKeyDictionary[Meter, GenAIInstruments] = weakref.WeakKeyDictionary()

    def __init__(self, meter: Meter) -> None:
        self.token_usage: Histogram = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_USAGE_BUCKETS,
        )
        self.duration: Histogram = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION, unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    @classmethod
    def for_meter(cls, meter: Meter) -> GenAIInstruments:
        try:
            return cls._cache[meter]
        except KeyError:
            instruments = cls._cache[meter] = cls(meter)
            return instruments


def _tracer_and_meter(telemetry: Telemetry | None) -> tuple[Tracer, Meter]:
    chosen = telemetry or current_telemetry()
    if chosen is not None:
        return chosen.tracer, chosen.meter
    return trace.get_tracer(INSTRUMENTATION_NAME), metrics.get_meter(INSTRUMENTATION_NAME)


def _content(payload: Any, redact: Redactor | None) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if redact is not None:
        text = redact(text)
    return scrub_secrets(text)


def _parts(message: Message) -> dict[str, Any]:
    """One message in the conventions' role + parts form."""
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": message.content})
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts.extend({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                 for c in message.tool_calls)
    return {"role": message.role, "parts": parts}


class ModelCallRecorder:
    """Handed out by `model_call_span`; `record(turn)` puts the answer on the span and the metrics."""

    def __init__(self, span: Span, instruments: GenAIInstruments, metric_attributes: dict[str, str],
                 record_content: bool, redact: Redactor | None) -> None:
        self.span = span
        self._instruments = instruments
        self._metric_attributes = metric_attributes
        self._record_content = record_content
        self._redact = redact

    def record(self, turn: ModelTurn) -> None:
        self.span.set_attribute(gen_ai.GEN_AI_RESPONSE_MODEL, turn.model)
        self.span.set_attribute(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, turn.usage.input_tokens)
        self.span.set_attribute(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, turn.usage.output_tokens)
        self.span.set_attribute(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, [turn.finish_reason])
        self.span.set_attribute(ATTR_COST_USD, turn.cost_usd)
        if self._record_content:
            self.span.set_attribute(gen_ai.GEN_AI_OUTPUT_MESSAGES,
                                    _content([_parts(turn.message) | {"finish_reason": turn.finish_reason}],
                                             self._redact))
        self._metric_attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = turn.model
        for kind, tokens in ((TOKEN_INPUT, turn.usage.input_tokens), (TOKEN_OUTPUT, turn.usage.output_tokens)):
            self._instruments.token_usage.record(
                tokens, {**self._metric_attributes, gen_ai.GEN_AI_TOKEN_TYPE: kind}
            )


@contextmanager
def model_call_span(
    request: ModelRequest,
    provider_name: str,
    *,
    request_model: str | None = None,
    telemetry: Telemetry | None = None,
    redact: Redactor | None = None,
    record_content: bool | None = None,
) -> Iterator[ModelCallRecorder]:
    """A CLIENT span around one model call, plus the duration histogram when it ends.

    `request_model` is the id sent to the provider (the registry entry's `model`); it defaults to
    `request.model`. On an exception the span gets `error.type` (a ProviderError's `error_type`, else
    the exception class) and the exception propagates unchanged.
    """
    tracer, meter = _tracer_and_meter(telemetry)
    instruments = GenAIInstruments.for_meter(meter)
    model = request_model or request.model
    record = record_content_enabled() if record_content is None else record_content
    base = {
        gen_ai.GEN_AI_OPERATION_NAME: OPERATION_CHAT,
        gen_ai.GEN_AI_PROVIDER_NAME: provider_name,
        gen_ai.GEN_AI_REQUEST_MODEL: model,
    }
    span_attributes: dict[str, Any] = {
        **base,
        **attribution_attributes(request.attribution),
        gen_ai.GEN_AI_REQUEST_MAX_TOKENS: request.max_tokens,
        gen_ai.GEN_AI_REQUEST_TEMPERATURE: request.temperature,
    }
    if record:
        span_attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = _content([_parts(m) for m in request.messages], redact)
    metric_attributes = {**base, **_metric_attribution(request.attribution)}
    started = time.perf_counter()
    with tracer.start_as_current_span(
        f"{OPERATION_CHAT} {model}", kind=SpanKind.CLIENT, attributes=span_attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:
        recorder = ModelCallRecorder(span, instruments, metric_attributes, record, redact)
        try:
            yield recorder
        except BaseException as err:
            error_type = _error_type(err)
            span.set_attribute(ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, scrub_secrets(str(err))[:500]))
            metric_attributes[ERROR_TYPE] = error_type
            raise
        finally:
            instruments.duration.record(time.perf_counter() - started, metric_attributes)


def tool_attribution(role: Role, attribution: Attribution | None = None) -> Attribution:
    """The attribution of a tool call: the run's own when the agent loop passed it along; else what the
    tool activity knows itself (the role from its grant, and the run the calling AgentRun serves)."""
    if attribution is not None:
        return attribution
    workflow_id = (activity.info().workflow_id or "") if activity.in_activity() else ""
    # An AgentRun's id is `<run id>/<role>/<round>-<n>` (workflows/spec_to_ship.py): the run is the prefix.
    run, _, child_role = workflow_id.rpartition("/")[0].rpartition("/")
    if run and child_role == role.value:
        workflow_id = run
    return Attribution(team="", service="", spec="", workflow_id=workflow_id, role=role)


@contextmanager
def tool_call_span(
    tool_name: str,
    attribution: Attribution,
    *,
    call_id: str | None = None,
    arguments: dict[str, Any] | None = None,
    telemetry: Telemetry | None = None,
    redact: Redactor | None = None,
    record_content: bool | None = None,
) -> Iterator[Span]:
    """An INTERNAL span `execute_tool {tool}` around one tool call; arguments only with content recording."""
    tracer, _ = _tracer_and_meter(telemetry)
    attributes: dict[str, Any] = {
        gen_ai.GEN_AI_OPERATION_NAME: OPERATION_EXECUTE_TOOL,
        gen_ai.GEN_AI_TOOL_NAME: tool_name,
        **attribution_attributes(attribution),
    }
    if call_id:
        attributes[gen_ai.GEN_AI_TOOL_CALL_ID] = call_id
    if arguments is not None and (record_content_enabled() if record_content is None else record_content):
        attributes[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = _content(arguments, redact)
    with tracer.start_as_current_span(
        f"{OPERATION_EXECUTE_TOOL} {tool_name}", kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as err:
            span.set_attribute(ERROR_TYPE, _error_type(err))
            span.set_status(Status(StatusCode.ERROR, scrub_secrets(str(err))[:500]))
            raise


def _error_type(err: BaseException) -> str:
    """A provider error's own type (`rate_limit`, `auth`, ...), else the exception's class."""
    kind = getattr(err, "error_type", None)
    return kind if isinstance(kind, str) else type(err).__qualname__
