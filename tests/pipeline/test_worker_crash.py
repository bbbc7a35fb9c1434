"""A worker killed with SIGKILL in the middle of a run: a new worker finishes it.

The run must end with exactly one PR and one merge, and no preview process may survive. The new
worker uses the same data folder, so it has the same identity and workspace queue (as a restarted pod
with its volume would) and its janitor reaps the preview the dead worker left: unconfined, its running
processes too; in bubblewrap the preview dies with the worker that started it, and the janitor removes
its worktree, sandbox folder and record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from faults.fault_harness import PREVIEW_MARKER, marked_processes, token_of
from temporalio.testing import WorkflowEnvironment

from activities.forge.local import list_pull_requests
from activities.workspace import sandbox
from activities.workspace.sandbox import Confinement
from contracts.agents import AgentChoice
from contracts.runs import RunState, RunStatus
from workers.runs import start_run
from workers.sample.repo import build_sample, git

pytestmark = pytest.mark.slow


def _start_worker(env: dict[str, str], data: Path, log: Path) -> subprocess.Popen[bytes]:
    spec2ship = Path(sys.executable).parent / "spec2ship"
    return subprocess.Popen([str(spec2ship), "worker", "--data-dir", str(data)], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _preview_processes(workflow_id: str) -> list[psutil.Process]:
    """This run's preview processes only: other tests on the machine may run previews of their own."""
    return marked_processes(PREVIEW_MARKER, token_of(workflow_id))


async def test_killed_worker_mid_preview_run_still_merges_once(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    spec = tmp_path / "slow.md"
    spec.write_text(paths["greet-by-name.md"].read_text().replace(
        'run: python -m unittest -q', 'run: sleep 6 && python -m unittest -q'))
    queue = f"crash-{uuid.uuid4()}"
    env = dict(os.environ, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
               SPEC2SHIP_TASK_QUEUE=queue)
    data = tmp_path / "worker"
    log = tmp_path / "worker.log"
    first = _start_worker(env, data, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        os.environ["SPEC2SHIP_TASK_QUEUE"] = queue
        handle, _ = await start_run(dev_env.client, spec, paths["repo"], AgentChoice(
            coder=f"scripted:{paths['coder-greet.yaml']}"), task_queue=queue, workflow_id=f"crash-{uuid.uuid4()}")
        records = data / "previews"
        deadline = time.monotonic() + 120
        while not list(records.glob("*.json")) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert list(records.glob("*.json")), f"no preview started; worker log:\n{log.read_text()[-2000:]}"
        await asyncio.sleep(1.0)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        if sandbox.choose() is Confinement.none:  # the worker's setting: SPEC2SHIP_SANDBOX as inherited
            assert _preview_processes(handle.id), "unconfined, the preview outlives the killed worker (its own session)"
        second = _start_worker(env, data, log)
        status: RunStatus = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        os.environ.pop("SPEC2SHIP_TASK_QUEUE", None)
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    assert status.state is RunState.merged, (status.reasons, log.read_text()[-3000:])
    pulls = list_pull_requests(paths["repo"])
    assert len(pulls) == 1 and pulls[0].state == "merged"
    merges = git(paths["repo"], "log", "--merges", "--oneline", "main").splitlines()
    assert len(merges) == 1, merges
    assert _preview_processes(handle.id) == []
    assert not list((data / "previews").glob("*.json"))
