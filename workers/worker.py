"""The CPU worker: every workflow, and the activities that need no GPU.

It polls two queues: the shared queue (workflows, forge, ledger, budget, model calls of remote and
scripted models) and its own workspace queue, named after a stable worker identity so that a worker
that crashed and came back finds the workspaces it holds on disk. It never polls an inference queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.agents.model_activities import ModelActivities
from activities.budget.activities import BudgetActivities
from activities.config import data_dir as default_data_dir
from activities.config import task_queue as default_task_queue
from activities.config import worker_id, workspace_queue
from activities.forge.activities import ForgeActivities
from activities.gate.activities import GateActivities
from activities.ledger.activities import LedgerActivities
from activities.preview.local import LocalPreviewBackend
from activities.workspace.activities import WorkspaceActivities
from workflows.agent_run import AgentRun
from workflows.service_ledger import ServiceLedger
from workflows.spec_to_ship import SpecToShip
from workflows.team_budget import TeamBudget

log = logging.getLogger("spec2ship.worker")

WORKFLOWS: list[type] = [SpecToShip, AgentRun, ServiceLedger, TeamBudget]


def activity_methods(holder: object) -> list[Callable[..., Any]]:
    """The bound methods of `holder` that are Temporal activities."""
    methods = (getattr(holder, name) for name in dir(holder) if not name.startswith("_"))
    return [method for method in methods if callable(method) and activity._Definition.from_callable(method)]


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

        found.extend(activity_methods(FactoryActivities(client, queue)))
    return found


def build_workers(
    client: Client,
    *,
    data_dir: Path | None = None,
    task_queue: str | None = None,
    identity: str | None = None,
    interceptors: Sequence[Any] = (),
    executor: ThreadPoolExecutor | None = None,
) -> list[Worker]:
    data = (data_dir or default_data_dir()).resolve()
    queue = task_queue or default_task_queue()
    ws_queue = workspace_queue(identity or worker_id(data)) if task_queue is None else f"{queue}-workspace-" + (
        identity or worker_id(data))
    preview = LocalPreviewBackend(data)
    reaped = preview.reap(force=True)
    if reaped:
        log.info("removed %d preview(s) left by an earlier worker: %s", len(reaped), ", ".join(reaped))
    pool = executor or ThreadPoolExecutor(max_workers=16, thread_name_prefix="spec2ship-activity")
    workspace = WorkspaceActivities(data, ws_queue, preview)
    models = ModelActivities(cpu_queue=queue, data_dir=data)
    forge = ForgeActivities()
    gate = GateActivities()
    ledger = LedgerActivities(client, queue)
    budget = BudgetActivities(client, queue)
    shared = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS + extra_workflows(),
        activities=[
            workspace.claim_workspace_queue, models.plan_agents, models.call_model,
            forge.load_spec, forge.open_pull_request, forge.publish_evidence, forge.merge_pull_request,
            forge.notify, forge.close_change, gate.decide_gate,
            ledger.record_outcome, ledger.record_later_outcome, ledger.read_trust,
            *budget.all(), *extra_activities(client, queue),
        ],
        activity_executor=pool,
        interceptors=list(interceptors),
    )
    own = Worker(
        client,
        task_queue=ws_queue,
        activities=[
            workspace.prepare_workspace, workspace.run_tool, workspace.diff_workspace, workspace.check_change,
            workspace.publish_branch, workspace.validate_in_preview, workspace.remove_workspace,
        ],
        activity_executor=pool,
        interceptors=list(interceptors),
    )
    return [shared, own]


async def run_workers(workers: list[Worker], stop: asyncio.Event) -> None:
    """Run until `stop` is set, then shut down gracefully (in-flight activities get to finish)."""
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
    for task in tasks:
        if task in done and task.exception():
            raise task.exception()  # type: ignore[misc]
    stopper.cancel()
