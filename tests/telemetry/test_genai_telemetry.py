"""GenAI spans and metrics, checked against the semantic-conventions package, and the exporters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from doubles.openai_server import OpenAIDouble, Reply, ScriptedToolCall, ServerThread
from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from activities.agents.base import ProviderError
from activities.agents.observed import observed_complete
from activities.agents.openai_compat import OpenAICompatProvider
from activities.agents.registry import ModelEntry, Price, ProviderKind
from activities.telemetry.genai import (
    DURATION_BUCKETS,
    TOKEN_USAGE_BUCKETS,
    model_call_span,
    tool_call_span,
)
from activities.telemetry.setup import Telemetry, setup_telemetry, temporal_tracing_interceptor
from activities.telemetry.usage_log import read_usage
from contracts.agents import Attribution, Message, ModelRequest, ModelTurn, Role, Usage

# The boundaries the GenAI semantic conventions recommend for these two histograms.
SEMCONV_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
SEMCONV_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
ATTRIBUTION = Attribution(team="payments", service="ledger-api", spec="SPEC-42", workflow_id="spec-42-run",
                          role=Role.coder)


class Captured:
    def __init__(self, tmp_path: Path) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.telemetry: Telemetry = setup_telemetry("spec2ship-test", tmp_path, span_exporter=self.spans,
                                                    metric_reader=self.reader, set_global=False)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metric(self, name: str) -> Metric:
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return metric
        raise AssertionError(f"no metric {name}")


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[Captured]:
    capture = Captured(tmp_path)
    yield capture
    capture.telemetry.shutdown()


def request(content: str = "fix the bug") -> ModelRequest:
    return ModelRequest(model="local-coder", messages=[Message(role="system", content="be careful"),
                                                       Message(role="user", content=content)],
                        max_tokens=512, temperature=0.1, attribution=ATTRIBUTION)


def turn() -> ModelTurn:
    return ModelTurn(message=Message(role="assistant", content="patched"), usage=Usage(input_tokens=300,
                     output_tokens=40), model="qwen2.5-coder-7b", provider="openai", cost_usd=0.002)


def points(metric: Metric) -> list[HistogramDataPoint]:
    return [p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)]


def test_a_model_call_span_follows_the_conventions(captured: Captured) -> None:
    with model_call_span(request(), "openai", request_model="qwen2.5-coder", telemetry=captured.telemetry) as call:
        call.record(turn())
    [span] = captured.finished()
    assert span.name == "chat qwen2.5-coder"
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes[gen_ai.GEN_AI_OPERATION_NAME] == gen_ai.GenAiOperationNameValues.CHAT.value
    assert attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[gen_ai.GEN_AI_REQUEST_MODEL] == "qwen2.5-coder"
    assert attributes[gen_ai.GEN_AI_RESPONSE_MODEL] == "qwen2.5-coder-7b"
    assert attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 300
    assert attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 40
    assert attributes[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 512
    assert attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert {k: attributes[k] for k in ("spec2ship.team", "spec2ship.service", "spec2ship.spec",
                                       "spec2ship.workflow_id", "spec2ship.role")} == {
        "spec2ship.team": "payments", "spec2ship.service": "ledger-api", "spec2ship.spec": "SPEC-42",
        "spec2ship.workflow_id": "spec-42-run", "spec2ship.role": "coder"}
    assert ERROR_TYPE not in attributes
    assert gen_ai.GEN_AI_INPUT_MESSAGES not in attributes and gen_ai.GEN_AI_OUTPUT_MESSAGES not in attributes


def test_token_usage_and_duration_histograms_follow_the_conventions(captured: Captured) -> None:
    assert list(TOKEN_USAGE_BUCKETS) == SEMCONV_TOKEN_BUCKETS
    assert list(DURATION_BUCKETS) == SEMCONV_DURATION_BUCKETS
    with model_call_span(request(), "openai", telemetry=captured.telemetry) as call:
        call.record(turn())

    usage = captured.metric(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE)
    assert usage.name == "gen_ai.client.token.usage"
    assert usage.unit == "{token}"
    by_type = {p.attributes[gen_ai.GEN_AI_TOKEN_TYPE]: p for p in points(usage) if p.attributes}
    assert set(by_type) == {gen_ai.GenAiTokenTypeValues.INPUT.value, gen_ai.GenAiTokenTypeValues.OUTPUT.value}
    assert (by_type["input"].sum, by_type["output"].sum) == (300, 40)
    assert list(by_type["input"].explicit_bounds) == SEMCONV_TOKEN_BUCKETS
    attributes = dict(by_type["input"].attributes or {})
    assert attributes[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[gen_ai.GEN_AI_REQUEST_MODEL] == "local-coder"
    assert attributes[gen_ai.GEN_AI_RESPONSE_MODEL] == "qwen2.5-coder-7b"
    assert attributes["spec2ship.team"] == "payments"
    assert "spec2ship.workflow_id" not in attributes  # one series per run would explode cardinality

    duration = captured.metric(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.name == "gen_ai.client.operation.duration"
    assert duration.unit == "s"
    [point] = points(duration)
    assert list(point.explicit_bounds) == SEMCONV_DURATION_BUCKETS
    assert point.count == 1


def test_a_failed_call_carries_error_type_on_span_and_duration(captured: Captured) -> None:
    with pytest.raises(ProviderError), model_call_span(request(), "anthropic", telemetry=captured.telemetry):
        raise ProviderError("rate limited", retryable=True, error_type="rate_limited")
    [span] = captured.finished()
    assert span.attributes is not None and span.attributes[ERROR_TYPE] == "rate_limited"
    assert span.status.status_code is StatusCode.ERROR
    [point] = points(captured.metric(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION))
    assert point.attributes is not None and point.attributes[ERROR_TYPE] == "rate_limited"


def test_content_is_recorded_only_when_enabled_and_redacted(captured: Captured,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-proj-ABCDEFGHIJKLMNOPQRSTUV123456"
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "plain-secret-value-42")
    prompt = f"use key {secret} and plain-secret-value-42 for customer alice@example.com"
    with model_call_span(request(prompt), "openai", telemetry=captured.telemetry) as call:
        call.record(turn())
    monkeypatch.setenv("SPEC2SHIP_RECORD_CONTENT", "true")
    with model_call_span(request(prompt), "openai", telemetry=captured.telemetry,
                         redact=lambda text: text.replace("alice@example.com", "<email>")) as call:
        call.record(turn())
    off, on = captured.finished()
    assert gen_ai.GEN_AI_INPUT_MESSAGES not in (off.attributes or {})
    attributes = dict(on.attributes or {})
    recorded = str(attributes[gen_ai.GEN_AI_INPUT_MESSAGES])
    messages = json.loads(recorded)
    assert messages[0] == {"role": "system", "parts": [{"type": "text", "content": "be careful"}]}
    assert "<email>" in recorded and "alice@example.com" not in recorded
    assert secret not in recorded and "plain-secret-value-42" not in recorded
    assert "[REDACTED]" in recorded
    assert json.loads(str(attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES]))[0]["parts"][0]["content"] == "patched"


def test_a_tool_call_span_follows_the_conventions(captured: Captured) -> None:
    with tool_call_span("read_file", ATTRIBUTION, call_id="call_1", arguments={"path": "a.py"},
                        telemetry=captured.telemetry):
        pass
    with pytest.raises(PermissionError), tool_call_span("write_file", ATTRIBUTION, telemetry=captured.telemetry):
        raise PermissionError("path outside the allowed tree")
    ok, failed = captured.finished()
    assert ok.name == "execute_tool read_file"
    attributes = dict(ok.attributes or {})
    assert attributes[gen_ai.GEN_AI_OPERATION_NAME] == gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
    assert attributes[gen_ai.GEN_AI_TOOL_NAME] == "read_file"
    assert attributes[gen_ai.GEN_AI_TOOL_CALL_ID] == "call_1"
    assert attributes["spec2ship.service"] == "ledger-api"
    assert gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS not in attributes
    assert failed.attributes is not None and failed.attributes[ERROR_TYPE] == "PermissionError"


async def test_observed_complete_spans_prices_and_logs_a_real_call(captured: Captured, tmp_path: Path) -> None:
    with OpenAIDouble(api_key=None) as server:
        server.script(Reply(content=None, tool_calls=[ScriptedToolCall(name="read_file", arguments={"path": "x"})],
                            input_tokens=1200, output_tokens=80, model="served"))
        entry = ModelEntry(name="local-coder", provider=ProviderKind.openai, base_url=server.base_url,
                           model="qwen2.5-coder", price=Price(input_per_mtok=1.0, output_per_mtok=4.0))
        result = await observed_complete(OpenAICompatProvider(entry), request(), request_model=entry.model,
                                         price=entry.price, data_dir=tmp_path, telemetry=captured.telemetry)
    assert result.cost_usd == pytest.approx(1200 / 1e6 + 80 * 4 / 1e6)
    [span] = captured.finished()
    assert span.name == "chat qwen2.5-coder"
    assert span.attributes is not None and span.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    [record] = read_usage(tmp_path)
    assert (record.attribution.team, record.model, record.response_model, record.provider) == (
        "payments", "local-coder", "served", "openai")
    assert (record.input_tokens, record.output_tokens) == (1200, 80)
    assert record.cost_usd == result.cost_usd


def test_without_otlp_spans_and_metrics_go_to_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    telemetry = setup_telemetry("spec2ship-worker", tmp_path, set_global=False)
    assert telemetry.destination == str(tmp_path / "telemetry")
    with model_call_span(request(), "openai", telemetry=telemetry) as call:
        call.record(turn())
    telemetry.shutdown()
    [line] = (tmp_path / "telemetry" / "spans.jsonl").read_text().splitlines()
    span = json.loads(line)
    assert span["name"] == "chat local-coder"
    assert span["attributes"][gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 40
    assert span["resource"]["attributes"]["service.name"] == "spec2ship-worker"
    exported = [json.loads(x) for x in (tmp_path / "telemetry" / "metrics.jsonl").read_text().splitlines()]
    names = {m["name"] for e in exported for r in e["resource_metrics"] for s in r["scope_metrics"]
             for m in s["metrics"]}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= names


class CollectorDouble:
    """Receives OTLP http/protobuf posts, as an OpenTelemetry Collector would."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}
        self._lock = threading.Lock()
        app = FastAPI()

        @app.post("/v1/traces")
        @app.post("/v1/metrics")
        async def receive(request: Request) -> Response:
            assert request.headers["content-type"] == "application/x-protobuf"
            body = await request.body()
            with self._lock:
                self.bodies[request.url.path].append(body)
            return Response(b"", media_type="application/x-protobuf")

        self.thread = ServerThread(app)


def test_with_an_otlp_endpoint_spans_and_metrics_are_sent_over_http(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    collector = CollectorDouble()
    collector.thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.thread.port}")
        telemetry = setup_telemetry("spec2ship-worker", tmp_path, set_global=False)
        assert telemetry.destination == "otlp"
        with model_call_span(request(), "openai", telemetry=telemetry) as call:
            call.record(turn())
        telemetry.shutdown()
    finally:
        collector.thread.stop()
    assert not (tmp_path / "telemetry").exists()
    traces = ExportTraceServiceRequest()
    traces.ParseFromString(b"".join(collector.bodies["/v1/traces"]))
    names = [s.name for r in traces.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert names == ["chat local-coder"]
    exported = ExportMetricsServiceRequest()
    exported.ParseFromString(collector.bodies["/v1/metrics"][-1])
    metric_names = {m.name for r in exported.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert "gen_ai.client.token.usage" in metric_names


# --- Temporal's tracing interceptor: model spans nest under the activity that made the call ------------

TRACE_TELEMETRY: dict[str, Telemetry] = {}


@activity.defn(name="traced_model_call")
async def traced_model_call(content: str) -> str:
    with model_call_span(request(content), "scripted", telemetry=TRACE_TELEMETRY["current"]) as call:
        call.record(turn())
    return "ok"


@workflow.defn(name="TracedRun", sandboxed=False)
class TracedRun:
    @workflow.run
    async def run(self, content: str) -> str:
        return str(await workflow.execute_activity(traced_model_call, content,
                                                   start_to_close_timeout=timedelta(seconds=30)))


async def test_the_interceptor_puts_model_spans_under_the_activity(captured: Captured, dev_client: Client,
                                                                   task_queue: str) -> None:
    TRACE_TELEMETRY["current"] = captured.telemetry
    interceptor = temporal_tracing_interceptor(captured.telemetry)
    client = Client(dev_client.service_client, namespace=dev_client.namespace,
                    data_converter=dev_client.data_converter, interceptors=[interceptor])
    async with Worker(client, task_queue=task_queue, workflows=[TracedRun], activities=[traced_model_call]):
        result = await client.execute_workflow(TracedRun.run, "hello", id=f"traced-{task_queue}",
                                               task_queue=task_queue)
    assert result == "ok"
    spans = {span.name: span for span in captured.finished()}
    assert "StartWorkflow:TracedRun" in spans
    run_activity = spans["RunActivity:traced_model_call"]
    chat = spans["chat local-coder"]
    assert chat.parent is not None and run_activity.context is not None
    assert chat.parent.span_id == run_activity.context.span_id
    assert chat.context is not None and chat.context.trace_id == spans["StartWorkflow:TracedRun"].context.trace_id
