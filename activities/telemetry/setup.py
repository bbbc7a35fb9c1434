"""OpenTelemetry providers for a spec2ship process, and the Temporal tracing interceptor.

Production sends OTLP (http/protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT is set; the embedded default
writes JSON lines under `<data_dir>/telemetry/` so a laptop run still leaves traces and metrics to
read. Tests hand in in-memory exporters and keep the providers out of the process-wide globals.

Each process (CLI command, worker, GPU worker) sets telemetry up once with `process_telemetry`;
that makes it the process's *current* telemetry, which spec2ship's own spans use and which
`workers.temporal_client.connect` turns into Temporal's tracing interceptor on the client (the
workers built on that client inherit it). Tests can make in-memory telemetry current with
`use_telemetry` without touching OTel's once-per-process globals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
    SpanProcessor,
)
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME
from temporalio.contrib.opentelemetry import TracingInterceptor

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "spec2ship"
OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class JsonLinesSpanExporter(SpanExporter):
    """One span per line, OTel's own JSON form; a file lock keeps lines whole across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path) + ".lock")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        except OSError as err:
            log.warning("cannot write spans to %s: %s", self.path, err)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class JsonLinesMetricExporter(MetricExporter):
    """One export (all metrics of one collection) per line."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path) + ".lock")

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> MetricExportResult:
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(metrics_data.to_json(indent=None) + "\n")
        except OSError as err:
            log.warning("cannot write metrics to %s: %s", self.path, err)
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


class Telemetry:
    """The providers of one process, with the tracer and meter spec2ship's own code uses."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider, *, destination: str) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME)
        self.meter = meter_provider.get_meter(INSTRUMENTATION_NAME)
        self.destination = destination

    def force_flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop; call on process exit or the last batch of spans is lost."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def otlp_configured() -> bool:
    return any(os.environ.get(name) for name in OTLP_ENDPOINT_ENVS)


def setup_telemetry(
    service_name: str,
    data_dir: Path,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    set_global: bool = True,
    metric_interval_s: float = 30.0,
) -> Telemetry:
    """Configure tracing and metrics for this process.

    Injected exporters win (tests); then OTLP when its endpoint variable is set; else JSON lines
    under `data_dir/telemetry/`. With `set_global` the providers become OTel's process-wide ones,
    which OTel allows once per process: a second call keeps the first and says so in the log.
    """
    resource = Resource.create({SERVICE_NAME: service_name})
    processor: SpanProcessor
    if span_exporter is not None:
        processor, destination = SimpleSpanProcessor(span_exporter), "injected"
    elif otlp_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor, destination = BatchSpanProcessor(OTLPSpanExporter()), "otlp"
    else:
        folder = data_dir / "telemetry"
        processor, destination = BatchSpanProcessor(JsonLinesSpanExporter(folder / "spans.jsonl")), str(folder)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(processor)

    if metric_reader is None:
        exporter: MetricExporter
        if otlp_configured():
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter()
        else:
            exporter = JsonLinesMetricExporter(data_dir / "telemetry" / "metrics.jsonl")
        metric_reader = PeriodicExportingMetricReader(exporter, export_interval_millis=metric_interval_s * 1000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader])

    telemetry = Telemetry(tracer_provider, meter_provider, destination=destination)
    if set_global:
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            log.warning("OpenTelemetry providers were already set in this process; keeping the first ones")
        else:
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
        use_telemetry(telemetry)
    return telemetry


_current: Telemetry | None = None


def use_telemetry(telemetry: Telemetry | None) -> None:
    """Make `telemetry` this process's current one (None: back to OTel's global providers)."""
    global _current
    _current = telemetry


def current_telemetry() -> Telemetry | None:
    return _current


@contextmanager
def process_telemetry(service_name: str, data_dir: Path) -> Iterator[Telemetry]:
    """Telemetry for the life of a process: set up once, flushed and shut down on the way out.

    Without the shutdown the last batch of spans (those of the final seconds) would be lost.
    """
    telemetry = setup_telemetry(service_name, data_dir)
    try:
        yield telemetry
    finally:
        try:
            telemetry.shutdown()
        except Exception as err:  # an exporter that cannot flush must not hide the command's own outcome
            log.warning("telemetry not flushed (%s): %s", telemetry.destination, err)
        if _current is telemetry:
            use_telemetry(None)


def temporal_tracing_interceptor(telemetry: Telemetry | None = None) -> TracingInterceptor:
    """Temporal's interceptor for clients and workers: workflow, activity, signal and update spans.

    Without `telemetry` it uses the process's current telemetry, else the global tracer provider.
    """
    chosen = telemetry or _current
    tracer = chosen.tracer if chosen is not None else trace.get_tracer(INSTRUMENTATION_NAME)
    return TracingInterceptor(tracer)
