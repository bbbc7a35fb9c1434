"""GenAI telemetry over OTLP/HTTP, from a worker process to a real OTLP receiver, as a cluster ships it.

A `spec2ship worker` process runs with OTEL_EXPORTER_OTLP_ENDPOINT pointing at `oteltap` (a real
OTLP/HTTP protobuf receiver) and carries a scripted run through the pipeline on the dev server. Its own
telemetry setup exports: the `chat` and `execute_tool` spans must arrive with their `gen_ai.*`
attributes, and the GenAI metrics with them once SIGTERM flushes the process's providers. The
collector example under deploy/otel is checked for the wiring this relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from doubles.processes import free_port, start, stop, wait_for_status
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings
from temporalio.testing import WorkflowEnvironment

from contracts.agents import AgentChoice
from contracts.runs import RunState
from workers.runs import start_run
from workers.sample.repo import build_sample

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "deploy" / "otel" / "collector.yaml"


def attributes(span: Span) -> dict[str, Any]:
    """A protobuf span's attributes as plain values (strings, ints, lists of strings)."""
    found: dict[str, Any] = {}
    for item in span.attributes:
        value = item.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            found[item.key] = [v.string_value for v in value.array_value.values]
        else:
            found[item.key] = getattr(value, kind) if kind else None
    return found


class Received:
    """Everything the receiver got, gathered from the moment it starts (its awaiters see only later messages)."""

    def __init__(self, receiver: OtelTapHttpProtobufReceiver) -> None:
        self.spans: list[Span] = []
        self.metrics: list[Metric] = []
        self._tasks = [asyncio.create_task(self._gather(receiver.stream_traces(), self.spans)),
                       asyncio.create_task(self._gather(receiver.stream_metrics(), self.metrics))]

    @staticmethod
    async def _gather(stream: AsyncIterator[Any], into: list[Any]) -> None:
        async for message in stream:
            into.append(message)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.slow
async def test_a_worker_exports_genai_spans_and_metrics_over_otlp_http(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    otlp_port, health_port = free_port(), free_port()
    paths = build_sample(tmp_path)
    queue = f"otlp-{uuid.uuid4()}"
    log = tmp_path / "worker.log"
    env = {"TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host, "SPEC2SHIP_TASK_QUEUE": queue,
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}", "OTEL_BSP_SCHEDULE_DELAY": "500"}
    receiver = OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=otlp_port))
    async with receiver:
        received = Received(receiver)
        await asyncio.sleep(0)  # the gatherers subscribe before anything is sent
        process = start(["worker", "--data-dir", str(tmp_path / "data"), "--health-port", str(health_port)],
                        {**os.environ, **env}, log)
        try:
            await asyncio.to_thread(wait_for_status, f"http://127.0.0.1:{health_port}/readyz", 200, process, log)
            coder = AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}")
            handle, _ = await start_run(dev_env.client, paths["greet-by-name.md"], paths["repo"], coder,
                                        task_queue=queue, workflow_id=f"otlp-{uuid.uuid4()}")
            status = await asyncio.wait_for(handle.result(), timeout=180)
            assert status.state is RunState.merged, (status.reasons, log.read_text()[-2000:])
            process.send_signal(signal.SIGTERM)  # the exit flushes the last spans and the metrics
            assert await asyncio.to_thread(process.wait, 60) == 0, log.read_text()[-3000:]
            for _ in range(40):  # the receiver polls every quarter second
                if received.metrics and any(s.name.startswith("chat ") for s in received.spans):
                    break
                await asyncio.sleep(0.25)
        finally:
            stop(process)
            await received.close()

    chats = [attributes(span) for span in received.spans if span.name.startswith("chat ")]
    assert chats, f"no chat span arrived over OTLP (got {sorted({s.name for s in received.spans})})"
    for chat in chats:
        assert chat["gen_ai.operation.name"] == "chat"
        assert chat["gen_ai.provider.name"] == "scripted"
        assert chat["gen_ai.request.model"].startswith("scripted:")
        assert chat["gen_ai.usage.input_tokens"] > 0 and "gen_ai.usage.output_tokens" in chat
        assert chat["spec2ship.team"] == "platform" and chat["spec2ship.service"] == "greeter"
        assert chat["spec2ship.workflow_id"] == handle.id
    tools = [attributes(span) for span in received.spans if span.name.startswith("execute_tool ")]
    assert {tool["gen_ai.tool.name"] for tool in tools} >= {"read_file", "write_file"}
    assert all(tool["gen_ai.operation.name"] == "execute_tool" for tool in tools)
    # Temporal's spans came the same way, so the GenAI spans sit inside the run's trace.
    assert any(span.name == "RunActivity:call_model" for span in received.spans)
    names = {metric.name for metric in received.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= names, names


def test_the_collector_example_receives_otlp_http_and_wires_every_pipeline() -> None:
    """Offline, no collector binary: every component a pipeline names is defined, and OTLP/HTTP listens
    on 4318, the port the chart's `otel.endpoint` example and the docs point at."""
    config = yaml.safe_load(COLLECTOR.read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], f"pipeline {name} names undefined {section[:-1]} {component}"
        assert "otlp" in pipeline["receivers"]
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    dropped = {action["key"] for action in config["processors"]["attributes/drop-content"]["actions"]}
    assert {"gen_ai.input.messages", "gen_ai.output.messages"} <= dropped
    assert "otel-collector" in (ROOT / "deploy" / "helm" / "spec2ship" / "ci" / "cloud-apikey-values.yaml").read_text()
