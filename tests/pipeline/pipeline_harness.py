"""Shared by the pipeline tests: a sample repo, workers on a fresh queue, and a way to run a spec."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import SPEC_TO_SHIP, spec_to_ship_id
from contracts.runs import RunStatus, SpecToShipInput
from workers import runs
from workers.sample.repo import build_sample
from workers.worker import build_workers


@contextlib.asynccontextmanager
async def running_workers(client: Client, data_dir: Path, queue: str) -> AsyncIterator[None]:
    workers = build_workers(client, data_dir=data_dir, task_queue=queue, identity=f"test-{uuid.uuid4().hex[:6]}")
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        for task in tasks:
            task.cancel()


def sample(tmp_path: Path) -> dict[str, Path]:
    return build_sample(tmp_path)


async def start_run(client: Client, queue: str, repo: Path, spec_file: Path, agents: AgentChoice,
                    suffix: str = "") -> WorkflowHandle[object, RunStatus]:
    ref = RepoRef(kind=ForgeKind.local, location=str(repo))
    workflow_id = spec_to_ship_id(ref, spec_file.stem) + f"-{uuid.uuid4().hex[:6]}{suffix}"
    return await client.start_workflow(
        SPEC_TO_SHIP,
        SpecToShipInput(repo=ref, spec=SpecSource(kind="inline", text=spec_file.read_text(), path=spec_file.name),
                        agents=agents),
        id=workflow_id, task_queue=queue, result_type=RunStatus,
    )


# The CLI's own wait, bounded for tests as before: a run that never decides fails the test in 120 s.
wait_for_decision = functools.partial(runs.wait_for_decision, timeout=120)
