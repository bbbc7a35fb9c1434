"""The CPU worker: every workflow, and the activities that need no GPU.

It polls two queues: the shared queue (workflows, forge, ledger, budget, model calls of remote and
scripted models) and its own workspace queue, named after a stable worker identity so that a worker
that crashed and came back finds the workspaces it holds on disk. It never polls an inference queue:
`build_inference_workers` makes the separate GPU-queue workers that `spec2ship up` runs beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import ServiceClient
from temporalio.worker import Worker

from activities.agents.model_activities import ModelActivities
from activities.agents.registry import ConfigError, ModelEntry, ModelRegistry, ProviderKind, load_registry
from activities.budget.activities import BudgetActivities
from activities.config import data_dir as default_data_dir
from activities.config import task_queue as default_task_queue
from activities.config import worker_id, worker_tuning, workspace_queue
from activities.forge.activities import ForgeActivities
from activities.forge.registry import close_forges
from activities.gate.activities import GateActivities
from activities.ledger.activities import LedgerActivities
from activities.preview.activities import PreviewActivities
from activities.preview.backends import make_preview_backend
from activities.preview.base import PreviewBackend
from activities.store import BlobStore
from activities.store.activities import StoreActivities
from activities.workspace.activities import WorkspaceActivities
from activities.workspace.sandbox import reap_orphans
from contracts.activities import implementations
from workers.codec.blobs import worker_store
from workflows.agent_run import AgentRun
from workflows.model_evidence import ModelEvidence
from workflows.preview_janitor import PreviewJanitor
from workflows.service_ledger import ServiceLedger
from workflows.spec_to_ship import SpecToShip
from workflows.store_janitor import StoreJanitor
from workflows.team_budget import TeamBudget

log = logging.getLogger("spec2ship.worker")

WORKFLOWS: list[type] = [SpecToShip, AgentRun, ServiceLedger, TeamBudget, ModelEvidence, PreviewJanitor, StoreJanitor]


def extra_workflows() -> list[type]:
    """Workflows that live in optional modules (factory runs) are registered when present."""
    found: list[type] = []
    with contextlib.suppress(ImportError):
        from workflows.factory_run import FactoryRun

        found.append(FactoryRun)
    return found


def extra_activities(client: Client, queue: str) -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    with contextlib.suppress(ImportError):
        from activities.factory.activities import FactoryActivities

        found.extend(implementations(FactoryActivities(client, queue)))
    return found


def build_workers(
    client: Client,
    *,
    data_dir: Path | None = None,
    task_queue: str | None = None,
    identity: str | None = None,
    interceptors: Sequence[Any] = (),
    executor: ThreadPoolExecutor | None = None,
    graceful_shutdown: timedelta = timedelta(),
    store: BlobStore | None = None,
    preview: PreviewBackend | None = None,
) -> list[Worker]:
    """The shared-queue and workspace-queue workers; on shutdown, activities in flight get `graceful_shutdown`
    to finish before they are cancelled (a pod's drain; the chart's terminationGracePeriodSeconds covers it).

    The blob store (default: the configured one, encrypted when the payload codec is on) is checked first, so
    a worker whose store is unreachable or misconfigured stops at start with a StoreError that says which,
    instead of failing agent runs later."""
    data = (data_dir or default_data_dir()).resolve()
    if store is None:
        store = worker_store(data)
    store.check()
    queue = task_queue or default_task_queue()
    ws_queue = workspace_queue(identity or worker_id(data)) if task_queue is None else f"{queue}-workspace-" + (
        identity or worker_id(data))
    # The configured backend (local processes, or vCluster previews labelled with this worker's id).
    preview = preview or make_preview_backend(data, owner=identity or worker_id(data))
    reaped = preview.reap(force=True)
    if reaped:
        log.info("removed %d preview(s) left by an earlier worker: %s", len(reaped), ", ".join(reaped))
    orphans = reap_orphans(data / "workspaces")
    if orphans:
        log.info("killed %d process(es) of agent commands an earlier worker left running", orphans)
    tuning = worker_tuning()
    pool = executor or ThreadPoolExecutor(max_workers=tuning.activities, thread_name_prefix="spec2ship-activity")
    workspace = WorkspaceActivities(data, ws_queue, preview, store)
    models = ModelActivities(cpu_queue=queue, data_dir=data, client=client, store=store)
    forge = ForgeActivities()
    shared = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS + extra_workflows(),
        activities=[
            workspace.claim_workspace_queue, *implementations(models), *implementations(forge),
            *implementations(GateActivities()), *implementations(LedgerActivities(client, queue)),
            *implementations(BudgetActivities(client, queue)), *implementations(PreviewActivities(preview)),
            *implementations(StoreActivities(store, client)),
            *extra_activities(client, queue),
        ],
        activity_executor=pool,
        interceptors=list(interceptors),
        graceful_shutdown_timeout=graceful_shutdown,
        max_cached_workflows=tuning.workflow_cache,
        max_concurrent_workflow_tasks=tuning.workflow_tasks,
        max_concurrent_activities=tuning.activities,
    )
    own = Worker(
        client,
        task_queue=ws_queue,
        activities=[method for method in implementations(workspace)
                    if method.__name__ != "claim_workspace_queue"],  # that one answers on the shared queue
        activity_executor=pool,
        interceptors=list(interceptors),
        graceful_shutdown_timeout=graceful_shutdown,
        max_concurrent_activities=tuning.activities,
    )
    return [shared, own]


async def client_with_identity(client: Client, identity: str) -> Client:
    """A second connection like `client` (same server, namespace, converter, interceptors) under another
    identity, so that a GPU worker in the same process is told apart in pollers and histories."""
    service = await ServiceClient.connect(dataclasses.replace(client.service_client.config, identity=identity))
    config = client.config()
    return Client(
        service,
        namespace=config["namespace"],
        data_converter=config["data_converter"],
        interceptors=config["interceptors"],
        default_workflow_query_reject_condition=config["default_workflow_query_reject_condition"],
        header_codec_behavior=config["header_codec_behavior"],
    )


async def build_inference_workers(
    client: Client,
    *,
    data_dir: Path | None = None,
    registry: ModelRegistry | None = None,
) -> tuple[list[Worker], list[str]]:
    """GPU-queue workers for the registry's `hf-local` models, to run in this process (`spec2ship up`).

    Returns the workers and one line per model (served, or why not). Without torch/transformers it
    returns no worker and one line that says the gpu extra is missing: the rest of the stack runs on.
    Each worker polls only its model's queue, under an identity of its own (`<identity>+gpu-worker`).
    """
    from activities.agents.hf_local import GPUExtraMissingError, ModelNotFoundError, require_gpu_extra

    if registry is None:
        try:
            registry = load_registry()
        except ConfigError as error:
            return [], [f"no hf-local model served: {error}"]
    local = [entry for entry in registry.models if entry.provider is ProviderKind.hf_local]
    if not local:
        return [], []
    try:
        require_gpu_extra()
    except GPUExtraMissingError as error:
        names = ", ".join(entry.name for entry in local)
        return [], [f"hf-local model(s) {names} not served in this process: {error}"]

    gpu_client = await client_with_identity(client, f"{client.identity}+gpu-worker")
    data = (data_dir or default_data_dir()).resolve()
    workers: list[Worker] = []
    notes: list[str] = []
    served: dict[str, str] = {}
    for entry in local:
        if entry.task_queue in served:
            notes.append(f"hf-local model {entry.name} not served: queue {entry.task_queue} already serves "
                         f"{served[entry.task_queue]}; give each hf-local model its own task_queue")
            continue
        try:
            worker = _serve_entry(gpu_client, entry, data)  # loads the weights: startup only
        except (ModelNotFoundError, ConfigError) as error:
            notes.append(f"hf-local model {entry.name} not served: {error}")
            continue
        served[entry.task_queue] = entry.name
        workers.append(worker)
        notes.append(f"serving hf-local model {entry.name} on queue {entry.task_queue}")
    return workers, notes


def _serve_entry(client: Client, entry: ModelEntry, data: Path) -> Worker:
    """The GPU worker of one registry entry (as `spec2ship gpu-worker --model NAME` builds it), answering to the
    entry's names with its price, from the registry given rather than the file's."""
    from activities.agents.batching import Batcher
    from activities.agents.hf_local import HFLocalModel, model_source
    from workers.gpu_worker import DEFAULT_MAX_BATCH, GPUModelActivities, default_max_concurrent, gpu_worker_for

    source = model_source(entry.path or entry.model)
    model = HFLocalModel(source)
    activities = GPUModelActivities(model, Batcher(model, max_batch=DEFAULT_MAX_BATCH),
                                    names={entry.name, entry.model, source}, price=entry.price, data_dir=data)
    return gpu_worker_for(client, activities, queue=entry.task_queue,
                          max_concurrent=default_max_concurrent(model.device, DEFAULT_MAX_BATCH))


async def run_workers(workers: list[Worker], stop: asyncio.Event) -> None:
    """Run until `stop` is set, then shut down gracefully (in-flight activities get to finish)."""
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    close_forges()  # shared GitHub connections end with the workers that used them
    for task in tasks:
        if task in done and task.exception():
            raise task.exception()  # type: ignore[misc]
    stopper.cancel()
