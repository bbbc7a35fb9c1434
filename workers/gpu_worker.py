"""The GPU worker: `call_model` for a local Hugging Face model, on an inference task queue only.

The CPU worker registers its own `call_model` (remote and scripted models) on the shared queue and
never polls an inference queue; this process registers the `hf-local` implementation under the same
activity name on the model's queue (default `gpu-inference`) and polls nothing else. The agent loop
picks the queue from the registry (`ModelChoice.task_queue`), so a model call lands where the
weights are. Concurrent calls are batched into one `generate` (activities.agents.batching), so
`--max-concurrent` is how many calls the GPU holds at once, not how many run one after another.

Run it as `spec2ship gpu-worker --model NAME` (a registry model with provider `hf-local`, or a folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from activities.agents.base import ProviderError
from activities.agents.batching import Batcher, BatcherClosedError
from activities.agents.hf_local import (
    PROVIDER,
    GPUExtraMissingError,
    HFLocalModel,
    ModelNotFoundError,
    model_source,
    require_gpu_extra,
)
from activities.agents.model_activities import provider_failure
from activities.agents.observed import observed_complete
from activities.agents.registry import ConfigError, Price, ProviderKind, UnknownModelError, load_registry
from activities.config import DEFAULT_GPU_QUEUE
from activities.config import data_dir as default_data_dir
from activities.store import BlobStore, StoreError, store_failure
from activities.store.conversation import converse
from contracts.activities import ModelCalls
from contracts.agents import ModelRequest, ModelTurn
from workers.codec.blobs import worker_store
from workers.health import DEFAULT_SHUTDOWN_GRACE_S, HealthPortOpt, ShutdownGraceOpt, serving_health

log = logging.getLogger("spec2ship.gpu_worker")

DEFAULT_MAX_BATCH = 8
CPU_MAX_CONCURRENT = 4


class InferenceProgress(BaseModel):
    """The heartbeat detail of a model call: visible in the Temporal UI while a long generation runs."""

    state: str
    tokens: int = 0


@dataclass(frozen=True)
class ServedModel:
    """What this worker serves: where the weights are, the names requests may use, its queue and price."""

    source: str
    names: frozenset[str]
    task_queue: str
    price: Price


def resolve_served_model(name_or_path: str) -> ServedModel:
    """A model folder as given, or a registry entry of provider `hf-local` (its `path`, else its `model`)."""
    if Path(name_or_path).expanduser().exists():
        source = model_source(name_or_path)
        names = {name_or_path, source, *_registry_names_for(source)}
        return ServedModel(source, frozenset(names), DEFAULT_GPU_QUEUE, Price())
    registry = load_registry()
    try:
        entry = registry.get(name_or_path)
    except UnknownModelError as error:
        raise ModelNotFoundError(f"--model {name_or_path!r} is neither an existing folder nor a registry model: "
                                 f"{error}") from error
    if entry.provider is not ProviderKind.hf_local:
        raise ConfigError(
            f"model {entry.name!r} in {registry.source} has provider {entry.provider!s}; the GPU worker serves "
            "only `hf-local` models (give it `provider: hf-local` and `path: <model folder>`)"
        )
    source = model_source(entry.path or entry.model)
    return ServedModel(source, frozenset({entry.name, entry.model, source}), entry.task_queue, entry.price)


def _registry_names_for(source: str) -> set[str]:
    """Registry names of hf-local entries whose folder is `source`: the agent loop asks for a model by name."""
    try:
        registry = load_registry()
    except ConfigError as error:
        log.warning("serving %s by path only: the model registry is unreadable: %s", source, error)
        return set()
    names = set()
    for entry in registry.models:
        if entry.provider is not ProviderKind.hf_local:
            continue
        try:
            if model_source(entry.path or entry.model) == source:
                names.add(entry.name)
        except ModelNotFoundError:
            continue
    return names


class _BatchedCompletion:
    """One call as a Provider (so `observed_complete` wraps it like any other): encode, batch, decode."""

    name = PROVIDER

    def __init__(self, model: HFLocalModel, batcher: Batcher, progress: InferenceProgress) -> None:
        self._model = model
        self._batcher = batcher
        self._progress = progress

    async def complete(self, request: ModelRequest) -> ModelTurn:
        started = time.monotonic()
        prompt = await asyncio.to_thread(self._model.encode, request.messages, request.tools)
        limit = self._model.new_token_budget(len(prompt.ids), request.max_tokens)

        def on_progress(tokens: int) -> None:
            self._progress.state, self._progress.tokens = "generating", tokens

        generation = await self._batcher.submit(prompt.ids, limit, temperature=request.temperature,
                                                on_progress=on_progress)
        return self._model.turn(request.model, prompt, generation, time.monotonic() - started)


class GPUModelActivities(ModelCalls):
    """`call_model` backed by one local model and its batcher (a test hands in its own batcher)."""

    def __init__(
        self,
        model: HFLocalModel,
        batcher: Batcher,
        *,
        names: Iterable[str] = (),
        price: Price | None = None,
        heartbeat_every_s: float = 5.0,
        data_dir: Path | None = None,
        store: BlobStore | None = None,
    ) -> None:
        self._model = model
        self._batcher = batcher
        self._names = frozenset(names) | {model.source}
        self._price = price or Price()
        self._heartbeat_every_s = heartbeat_every_s
        self._data_dir = data_dir
        # The same store as the CPU workers': the agent loop hands this worker a reference to the conversation.
        self._store = store or worker_store(data_dir)

    @activity.defn(name="call_model")
    async def call_model(self, request: ModelRequest) -> ModelTurn:
        if request.model not in self._names:
            served = ", ".join(sorted(self._names))
            raise ApplicationError(
                f"model {request.model!r} is not served by this GPU worker (it serves {served}) on task queue "
                f"{activity.info().task_queue!r}: give each hf-local model its own task_queue in the registry",
                type="wrong_model",
                non_retryable=True,
            )
        progress = InferenceProgress(state="queued")
        beat = asyncio.create_task(self._heartbeat(progress))
        # Span, GenAI metrics, price and a usage record (for `spec2ship costs`), as on the CPU worker.
        def complete(whole: ModelRequest) -> Awaitable[ModelTurn]:
            return observed_complete(
                _BatchedCompletion(self._model, self._batcher, progress), whole,
                request_model=self._model.source, price=self._price, data_dir=self._data_dir or default_data_dir(),
            )

        try:
            turn = await converse(self._store, request, complete)
        except ProviderError as error:
            raise provider_failure(error) from error
        except StoreError as error:
            raise store_failure(error) from error
        except BatcherClosedError as error:
            raise ApplicationError(str(error), type="worker_shutdown") from error
        finally:
            beat.cancel()
        activity.logger.info(
            "%s: %d prompt + %d generated tokens in %.2fs (%s)", request.model, turn.usage.input_tokens,
            turn.usage.output_tokens, turn.duration_s, turn.finish_reason,
        )
        return turn

    async def _heartbeat(self, progress: InferenceProgress) -> None:
        """Heartbeat while queued or generating: liveness for the server, and the way cancellation arrives."""
        while True:
            activity.heartbeat(progress.model_copy())
            await asyncio.sleep(self._heartbeat_every_s)


def default_max_concurrent(device: str, max_batch: int) -> int:
    """Two batches' worth on CUDA (one generating, one gathering); a few on a CPU, where batches are slow."""
    return max_batch * 2 if device.startswith("cuda") else CPU_MAX_CONCURRENT


def gpu_worker_for(
    client: Client, activities: GPUModelActivities, *, queue: str, max_concurrent: int,
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S,
) -> Worker:
    """The Worker itself: ONLY `call_model`, on ONLY the inference queue, no workflows."""
    return Worker(
        client,
        task_queue=queue,
        activities=[activities.call_model],
        max_concurrent_activities=max_concurrent,
        # On SIGTERM, calls already generating get this long to finish before they are cancelled (and retried).
        graceful_shutdown_timeout=timedelta(seconds=shutdown_grace_s),
        # A burst of calls should reach the batcher together, not five long-polls at a time.
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=max(5, min(max_concurrent, 32))),
    )


def build_gpu_worker(
    client: Client,
    model_name_or_path: str,
    queue: str | None = None,
    max_concurrent: int | None = None,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    device: str | None = None,
    data_dir: Path | None = None,
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S,
) -> Worker:
    """Load the model (once per process) and build the worker that serves it.

    `queue` defaults to the registry entry's task_queue, or `gpu-inference` for a folder.
    """
    require_gpu_extra()
    served = resolve_served_model(model_name_or_path)
    model = HFLocalModel(served.source, device=device)
    batcher = Batcher(model, max_batch=max_batch)
    activities = GPUModelActivities(model, batcher, names=served.names, price=served.price, data_dir=data_dir)
    concurrent = max_concurrent or default_max_concurrent(model.device, max_batch)
    log.info("serving %s on %s (%s) from queue %s, batches of up to %d, %d calls at once",
             model_name_or_path, model.device, model.dtype, queue or served.task_queue, max_batch, concurrent)
    return gpu_worker_for(client, activities, queue=queue or served.task_queue, max_concurrent=concurrent,
                          shutdown_grace_s=shutdown_grace_s)


async def serve(model: str, queue: str | None, max_concurrent: int | None, max_batch: int,
                health_port: int | None = None, shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S) -> None:
    """Run the GPU worker until SIGINT/SIGTERM; in-flight calls get to finish."""
    from workers.temporal_client import connect

    require_gpu_extra()
    resolve_served_model(model)  # a bad --model fails here, before connecting to Temporal
    worker_store().check()  # and so does a blob store this machine cannot reach (conversations live there)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect()
    worker = build_gpu_worker(client, model, queue, max_concurrent, max_batch=max_batch,
                              shutdown_grace_s=shutdown_grace_s)
    typer.echo(f"gpu worker serving {model} on queue {worker.task_queue} at {client.service_client.config.target_host}")
    running = asyncio.create_task(worker.run())
    stopper = asyncio.create_task(stop.wait())
    async with serving_health(health_port, client, [worker], stop):
        await asyncio.wait([running, stopper], return_when=asyncio.FIRST_COMPLETED)
        await worker.shutdown()
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper
    if running.done() and running.exception():
        raise running.exception()  # type: ignore[misc]


def gpu_worker(
    model: Annotated[str, typer.Option("--model", help="A registry model (provider hf-local) or a model folder.")],
    queue: Annotated[
        str | None,
        typer.Option("--queue", help=f"Inference task queue; default: the registry entry's, else {DEFAULT_GPU_QUEUE}."),
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option("--max-concurrent", min=1,
                     help=f"Model calls held at once; default: 2 batches on CUDA, {CPU_MAX_CONCURRENT} on a CPU."),
    ] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Requests per generate call.")] = (
        DEFAULT_MAX_BATCH
    ),
    health_port: HealthPortOpt = None,
    shutdown_grace: ShutdownGraceOpt = DEFAULT_SHUTDOWN_GRACE_S,
) -> None:
    """Serve a local Hugging Face model's `call_model` on an inference task queue until Ctrl-C / SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(model, queue, max_concurrent, max_batch, health_port, shutdown_grace))
    except (GPUExtraMissingError, ModelNotFoundError, ConfigError) as error:
        typer.secho(f"gpu-worker: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from error
    except StoreError as error:
        typer.secho(f"gpu-worker: blob store: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from error
