"""The GPU worker inside the stack: `build_inference_workers` (what `spec2ship up` runs beside the CPU worker)
serves a whole run's coder turns from the model's own queue, and the CPU worker never polls that queue."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import pytest
import pytest_asyncio
from doubles.tiny_model import build_tiny_model, skip_without_gpu_extra
from pipeline.pipeline_harness import running_workers, start_run
from selection.own_service import own_service
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.agents.registry import parse_registry
from contracts.agents import AgentChoice
from contracts.names import ledger_id, model_evidence_id
from contracts.runs import RunState
from workers.sample.repo import build_sample
from workers.worker import build_inference_workers


@pytest.fixture(scope="module")
def task_queue() -> str:
    """One queue for the module, as in production: the entity workflows a run creates outlive a test."""
    return f"gpu-stack-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def quick_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with every token a stop token (real models list several): each answer is one token of
    noise, so a run's coder finishes at once and the run ends with "the coder produced no change"."""
    skip_without_gpu_extra()
    folder = build_tiny_model(tmp_path_factory.mktemp("gpu-stack") / "tiny")
    generation = json.loads((folder / "generation_config.json").read_text())
    generation["eos_token_id"] = list(range(json.loads((folder / "config.json").read_text())["vocab_size"]))
    (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


@pytest_asyncio.fixture(scope="module")
async def entities(dev_env: WorkflowEnvironment) -> AsyncIterator[list[str]]:
    """Entity workflows this module starts, terminated at its end (their queue is polled by no one after)."""
    started: list[str] = [model_evidence_id("feature")]
    with suppress(RPCError):  # evidence left by another module, on a queue this module does not poll
        await dev_env.client.get_workflow_handle(model_evidence_id("feature")).terminate("fresh for the GPU tests")
    yield started
    for workflow_id in started:
        with suppress(RPCError):
            await dev_env.client.get_workflow_handle(workflow_id).terminate("test finished")


async def pollers(client: Client, queue: str) -> set[str]:
    identities: set[str] = set()
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind))
        identities |= {poller.identity for poller in response.pollers}
    return identities


@pytest.mark.slow
async def test_the_gpu_worker_in_the_stack_serves_the_coder_of_a_run(
    dev_client: Client, task_queue: str, quick_tiny: Path, entities: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu_queue = f"{task_queue}-gpu"
    config = tmp_path / "spec2ship.yaml"
    config.write_text(f"models:\n  - {{name: tiny, provider: hf-local, path: '{quick_tiny}', task_queue: {gpu_queue},"
                      " roles: [coder]}\n", encoding="utf-8")
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    paths = build_sample(tmp_path)
    service, spec = own_service(paths)
    entities.append(ledger_id(service))
    data = tmp_path / "data"

    inference, notes = await build_inference_workers(dev_client, data_dir=data)
    assert notes == [f"serving hf-local model tiny on queue {gpu_queue}"]
    [gpu] = inference
    gpu_identity = gpu.client.identity
    assert gpu_identity != dev_client.identity
    async with running_workers(dev_client, data, task_queue), gpu:
        handle = await start_run(dev_client, task_queue, paths["repo"], spec, AgentChoice())  # nothing named
        status = await handle.result()
        on_gpu_queue, on_cpu_queue = await pollers(dev_client, gpu_queue), await pollers(dev_client, task_queue)
        parent = await handle.fetch_history()
        [child_id] = [event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                      for event in parent.events
                      if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED]
        child = await dev_client.get_workflow_handle(child_id).fetch_history()

    assert status.state is RunState.failed
    assert any("the coder produced no change" in reason for reason in status.reasons), status.reasons
    scheduled = {event.event_id: event.activity_task_scheduled_event_attributes for event in child.events
                 if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
    model_calls = {event_id for event_id, attrs in scheduled.items() if attrs.activity_type.name == "call_model"}
    assert model_calls, "the coder made no model call"
    assert {scheduled[event_id].task_queue.name for event_id in model_calls} == {gpu_queue}
    completed_by = {event.activity_task_completed_event_attributes.identity for event in child.events
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                    and event.activity_task_completed_event_attributes.scheduled_event_id in model_calls}
    assert completed_by == {gpu_identity}
    # Only the GPU worker polls the inference queue; it polls nothing else.
    assert on_gpu_queue == {gpu_identity}
    assert dev_client.identity in on_cpu_queue and gpu_identity not in on_cpu_queue


async def test_without_hf_local_models_nothing_is_served_and_a_bad_one_is_reported(
    dev_client: Client, quick_tiny: Path, tmp_path: Path
) -> None:
    assert await build_inference_workers(dev_client, registry=parse_registry("models: []\n")) == ([], [])
    registry = parse_registry(
        "models:\n"
        f"  - {{name: tiny, provider: hf-local, path: '{quick_tiny}', task_queue: q-one}}\n"
        f"  - {{name: tiny-again, provider: hf-local, path: '{quick_tiny}', task_queue: q-one}}\n"
        f"  - {{name: gone, provider: hf-local, path: '{tmp_path / 'nowhere'}', task_queue: q-two}}\n"
    )
    workers, notes = await build_inference_workers(dev_client, data_dir=tmp_path, registry=registry)
    assert [worker.task_queue for worker in workers] == ["q-one"]
    assert notes[0] == "serving hf-local model tiny on queue q-one"
    assert notes[1].startswith("hf-local model tiny-again not served: queue q-one already serves tiny")
    assert notes[2].startswith("hf-local model gone not served: ")


async def test_without_the_gpu_extra_the_stack_says_so_in_one_line_and_goes_on(
    dev_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    registry = parse_registry("models:\n  - {name: tiny, provider: hf-local, path: /models/tiny}\n"
                              "  - {name: big, provider: hf-local, path: /models/big, task_queue: gpu-big}\n")
    workers, notes = await build_inference_workers(dev_client, registry=registry)
    assert workers == []
    [note] = notes
    assert note.startswith("hf-local model(s) tiny, big not served in this process: the GPU worker needs torch")
    assert "pip install" in note
