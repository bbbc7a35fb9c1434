"""The GPU worker on the real dev server: `call_model` served on its own inference queue, and only there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import typer
from doubles.call_models_workflow import CallModels, CallModelsInput
from doubles.tiny_model import build_tiny_model, skip_without_gpu_extra
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from activities.agents.batching import Batcher
from activities.agents.hf_local import HFLocalModel, ModelNotFoundError
from activities.agents.registry import ConfigError
from activities.telemetry.usage_log import read_usage
from contracts.agents import Attribution, Message, ModelRequest, Role
from workers.gpu_worker import (
    GPUModelActivities,
    build_gpu_worker,
    default_max_concurrent,
    gpu_worker,
    gpu_worker_for,
    resolve_served_model,
)

GPU_IDENTITY = "gpu-worker-under-test"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skip_without_gpu_extra()
    return build_tiny_model(tmp_path_factory.mktemp("gpu-worker") / "tiny")


@pytest_asyncio.fixture
async def gpu_client(dev_env: WorkflowEnvironment) -> Client:
    """A client of its own, so the GPU worker's polls are told apart from the CPU worker's by identity."""
    return await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        identity=GPU_IDENTITY,
        data_converter=pydantic_data_converter,
    )


@pytest_asyncio.fixture
async def cpu_worker(dev_client: Client, task_queue: str) -> AsyncIterator[Worker]:
    """Stands in for the CPU worker: it runs the workflow on the shared queue and serves no model calls."""
    async with Worker(dev_client, task_queue=task_queue, workflows=[CallModels]) as worker:
        yield worker


def model_request(model: str, text: str, max_tokens: int = 6) -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[Message(role="user", content=text)],
        max_tokens=max_tokens,
        attribution=Attribution(team="t", service="s", spec="spec-1", workflow_id="wf", role=Role.coder),
    )


async def pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind)
    )
    return {poller.identity for poller in response.pollers}


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    """Wait for a condition that another process or thread makes true; fail with `what` if it never does."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        value = condition()
        if value if isinstance(value, bool) else await value:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_the_gpu_worker_serves_call_model_on_its_own_queue_only(
    dev_client: Client, gpu_client: Client, cpu_worker: Worker, task_queue: str, tiny: Path, tmp_path: Path
) -> None:
    gpu_queue = f"{task_queue}-gpu"
    texts = ["Add a health endpoint.", "Fix the failing test.", "Rename the module."]
    async with build_gpu_worker(gpu_client, str(tiny), queue=gpu_queue, max_concurrent=4, data_dir=tmp_path):
        result = await dev_client.execute_workflow(
            CallModels.run,
            CallModelsInput(requests=[model_request(str(tiny), t) for t in texts], task_queue=gpu_queue),
            id=f"call-models-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        gpu_activity_pollers = await pollers(dev_client, gpu_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        cpu_pollers = await pollers(dev_client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) | await pollers(
            dev_client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        )

    model = HFLocalModel(tiny)
    assert [turn.usage.input_tokens for turn in result.turns] == [
        len(model.encode([Message(role="user", content=t)]).ids) for t in texts
    ]
    assert all(1 <= turn.usage.output_tokens <= 6 for turn in result.turns)
    assert {turn.provider for turn in result.turns} == {"hf-local"}
    assert len({turn.message.content for turn in result.turns}) == len(texts)
    usage = read_usage(tmp_path)  # the same cost ledger as the CPU worker's model calls
    assert sorted(r.output_tokens for r in usage) == sorted(t.usage.output_tokens for t in result.turns)
    assert GPU_IDENTITY in gpu_activity_pollers
    assert cpu_pollers  # the CPU worker polls its queue ...
    assert GPU_IDENTITY not in cpu_pollers  # ... and the GPU worker never does


async def test_a_model_call_on_the_cpu_queue_is_not_picked_up_by_the_gpu_worker(
    dev_client: Client, gpu_client: Client, cpu_worker: Worker, task_queue: str, tiny: Path, tmp_path: Path
) -> None:
    async with build_gpu_worker(gpu_client, str(tiny), queue=f"{task_queue}-gpu", max_concurrent=2, data_dir=tmp_path):
        with pytest.raises(WorkflowFailureError) as failure:
            await dev_client.execute_workflow(
                CallModels.run,
                CallModelsInput(requests=[model_request(str(tiny), "hi")], task_queue=task_queue,
                                schedule_to_start_timeout_s=1.0),
                id=f"call-models-{uuid.uuid4()}",
                task_queue=task_queue,
                )
    cause = failure.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ActivityTimeoutError)
    assert cause.cause.type is TimeoutType.SCHEDULE_TO_START


async def test_a_call_for_another_model_is_refused_without_retrying(
    dev_client: Client, gpu_client: Client, cpu_worker: Worker, task_queue: str, tiny: Path, tmp_path: Path
) -> None:
    gpu_queue = f"{task_queue}-gpu"
    async with build_gpu_worker(gpu_client, str(tiny), queue=gpu_queue, max_concurrent=2, data_dir=tmp_path):
        with pytest.raises(WorkflowFailureError) as failure:
            await dev_client.execute_workflow(
                CallModels.run,
                CallModelsInput(requests=[model_request("some-other-model", "hi")], task_queue=gpu_queue),
                id=f"call-models-{uuid.uuid4()}",
                task_queue=task_queue,
                )
    assert isinstance(failure.value.cause, ActivityError)
    error = failure.value.cause.cause
    assert isinstance(error, ApplicationError)
    assert error.type == "wrong_model"
    assert error.non_retryable
    assert "some-other-model" in str(error) and "own task_queue" in str(error)


async def test_cancelling_the_call_stops_its_generation(
    dev_client: Client, gpu_client: Client, cpu_worker: Worker, task_queue: str, tiny: Path, tmp_path: Path
) -> None:
    model = HFLocalModel(tiny)
    batcher = Batcher(model, max_batch=4)
    activities = GPUModelActivities(model, batcher, names=["tiny"], heartbeat_every_s=0.1, data_dir=tmp_path)
    gpu_queue = f"{task_queue}-gpu"
    long = model.context_window - 100  # seconds of generation on the CPU
    async with gpu_worker_for(gpu_client, activities, queue=gpu_queue, max_concurrent=2):
        handle = await dev_client.start_workflow(
            CallModels.run,
            CallModelsInput(requests=[model_request("tiny", "go on for long", max_tokens=long)], task_queue=gpu_queue,
                            heartbeat_timeout_s=1.0),
            id=f"call-models-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await eventually(lambda: batcher.running == 1, "the call to start generating")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        await eventually(lambda: len(batcher.history) == 1, "the cancelled generation to return")

    assert isinstance(failure.value.cause, CancelledError)
    assert batcher.stats.cancelled_running == 1
    assert 0 < batcher.history[0].steps < long


def test_max_concurrent_defaults_to_what_the_device_holds() -> None:
    assert default_max_concurrent("cuda", 8) == 16
    assert default_max_concurrent("cuda:1", 4) == 8
    assert default_max_concurrent("cpu", 8) == 4


def test_a_registry_model_resolves_to_its_folder_queue_and_price(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "spec2ship.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: tiny, provider: hf-local, path: '{tiny}', task_queue: gpu-tiny,"
        " price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
        "  - {name: remote, provider: openai, endpoint: 'http://127.0.0.1:1/v1'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    served = resolve_served_model("tiny")
    assert served.source == str(tiny.resolve())
    assert "tiny" in served.names and served.task_queue == "gpu-tiny"
    assert served.price.output_per_mtok == 2.0
    with pytest.raises(ConfigError, match="serves only `hf-local` models"):
        resolve_served_model("remote")
    with pytest.raises(ModelNotFoundError, match="neither an existing folder nor a registry model"):
        resolve_served_model("missing")
    by_path = resolve_served_model(str(tiny))  # started with the folder, it still answers to the registry name
    assert "tiny" in by_path.names and by_path.source == served.source


def test_the_command_says_what_is_wrong_with_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_without_gpu_extra()
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(tmp_path / "absent.yaml"))
    app = typer.Typer()
    app.command()(gpu_worker)
    result = CliRunner().invoke(app, ["--model", str(tmp_path / "no-model-here")])
    assert result.exit_code == 2
    assert "neither an existing folder nor a registry model" in result.output
