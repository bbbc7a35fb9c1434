"""A whole scripted run on the dev server, traced: Temporal's interceptor on the client (the workers inherit
it) gives workflow and activity spans, and the activities add GenAI `chat` and `execute_tool` spans under
them, all in the run's one trace and attributed to the run."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from pipeline.pipeline_harness import running_workers, start_run
from selection.own_service import own_service
from temporalio.client import Client

from activities.config import TemporalSettings
from activities.telemetry.genai import ATTR_ROLE, ATTR_SERVICE, ATTR_TEAM, ATTR_WORKFLOW_ID
from activities.telemetry.setup import Telemetry, setup_telemetry, use_telemetry
from contracts.agents import AgentChoice
from workers.sample.repo import build_sample
from workers.temporal_client import connect


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Telemetry, InMemorySpanExporter]]:
    """In-memory telemetry made this process's current one, as `process_telemetry` does for a command."""
    spans = InMemorySpanExporter()
    telemetry = setup_telemetry("spec2ship-test", tmp_path, span_exporter=spans, metric_reader=InMemoryMetricReader(),
                                set_global=False)
    use_telemetry(telemetry)
    try:
        yield telemetry, spans
    finally:
        use_telemetry(None)
        telemetry.shutdown()


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


@pytest.mark.slow
async def test_a_run_is_traced_from_workflow_to_model_and_tool_calls(
    dev_client: Client, traced: tuple[Telemetry, InMemorySpanExporter], tmp_path: Path
) -> None:
    telemetry, exporter = traced
    client = await connect(TemporalSettings(address=dev_client.service_client.config.target_host,
                                            namespace=dev_client.namespace))
    assert client.config()["interceptors"], "connect() put no tracing interceptor on the client"
    paths = build_sample(tmp_path)
    service, spec = own_service(paths)
    coder, reviewer = paths["coder-greet.yaml"], paths["reviewer-approve.yaml"]
    queue = f"telemetry-{uuid.uuid4()}"
    async with running_workers(client, tmp_path / "data", queue):
        handle = await start_run(client, queue, paths["repo"], spec,
                                 AgentChoice(coder=f"scripted:{coder}", reviewer=f"scripted:{reviewer}"))
        status = await handle.result()
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    names = Counter(span.name for span in spans)

    assert status.service == service and status.tokens > 0
    # Temporal's spans: the workflows and every kind of activity the run used.
    assert names["StartWorkflow:SpecToShip"] == 1 and names["RunWorkflow:SpecToShip"] >= 1
    assert names["StartChildWorkflow:AgentRun"] == 2 and names["RunWorkflow:AgentRun"] >= 2
    for activity in ("plan_agents", "prepare_workspace", "call_model", "run_tool", "diff_workspace", "decide_gate",
                     "record_outcome"):
        assert names[f"RunActivity:{activity}"] >= 1, f"no span for activity {activity}: {sorted(names)}"
    # GenAI spans: one `chat <model>` per model call (4 coder turns, 2 reviewer turns) ...
    assert names[f"chat scripted:{coder}"] == 4 and names[f"chat scripted:{reviewer}"] == 2
    assert len(named(spans, "chat ")) == names["RunActivity:call_model"]
    # ... and one `execute_tool <name>` per executed tool call (read, write twice, run; the reviewer's read).
    tools = named(spans, "execute_tool ")
    assert Counter(span.name for span in tools) == {"execute_tool read_file": 2, "execute_tool write_file": 2,
                                                    "execute_tool run_command": 1}
    assert len(tools) == names["RunActivity:run_tool"]

    trace_id = next(span for span in spans if span.name == "StartWorkflow:SpecToShip").context.trace_id
    by_id = {span.context.span_id: span for span in spans}
    for span in [*named(spans, "chat "), *tools]:
        assert span.context.trace_id == trace_id, f"{span.name} is not in the run's trace"
        parent = by_id[span.parent.span_id] if span.parent else None
        assert parent is not None and parent.name.startswith("RunActivity:"), f"{span.name} has no activity parent"
        attributes = dict(span.attributes or {})
        assert attributes[ATTR_WORKFLOW_ID] == handle.id
        assert attributes[ATTR_ROLE] in {"coder", "reviewer"}
    for span in named(spans, "chat "):
        attributes = dict(span.attributes or {})
        assert (attributes[ATTR_TEAM], attributes[ATTR_SERVICE]) == ("platform", service)
        assert attributes[gen_ai.GEN_AI_OPERATION_NAME] == "chat" and attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] > 0
    for span in tools:
        attributes = dict(span.attributes or {})
        assert attributes[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert attributes[gen_ai.GEN_AI_TOOL_NAME] == span.name.removeprefix("execute_tool ")
        assert attributes["spec2ship.tool.status"] == "ok"
