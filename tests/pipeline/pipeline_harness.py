"""Shared by the pipeline tests: a sample repo, workers on a fresh queue, and a way to run a spec.

Workers run and stop the way `spec2ship worker` runs them (`workers.worker.run_workers`); runs start and are
waited for through the CLI's own helpers (`workers.runs`), each with a unique id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from activities.preview.base import PreviewBackend
from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef
from contracts.names import spec_to_ship_id
from contracts.runs import RunStatus
from workers import runs
from workers.worker import build_workers, run_workers


@contextlib.asynccontextmanager
async def running_workers(client: Client, data_dir: Path, queue: str,
                          preview: PreviewBackend | None = None) -> AsyncIterator[None]:
    stop = asyncio.Event()
    workers = build_workers(client, data_dir=data_dir, task_queue=queue, identity=f"test-{uuid.uuid4().hex[:6]}",
                            preview=preview)
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        yield
    finally:
        stop.set()
        await running


async def start_run(client: Client, queue: str, repo: Path, spec_file: Path, agents: AgentChoice,
                    suffix: str = "") -> WorkflowHandle[object, RunStatus]:
    """The spec goes to the workflow as it is, unvalidated, like a spec from an issue."""
    ref = RepoRef(kind=ForgeKind.local, location=str(repo))
    workflow_id = spec_to_ship_id(ref, spec_file.stem) + f"-{uuid.uuid4().hex[:6]}{suffix}"
    return await runs.submit_run(client, ref, spec_file.read_text(), spec_file.name, agents, task_queue=queue,
                                 workflow_id=workflow_id)


# The CLI's own wait, bounded for tests as before: a run that never decides fails the test in 120 s.
wait_for_decision = functools.partial(runs.wait_for_decision, timeout=120)
