"""A long agent run leaves little history: its conversation and large tool results are in the blob store.

A whole run (SpecToShip with its coder, reviewer and validator AgentRun children) whose coder takes 40
steps, 36 of them reading 12 kB slices, must leave at most 1.5 MB of history across all its workflows and
no payload over 256 kB (before the store: 10.5 MB and 489 kB for the coder alone). Sizes, as the server
counts them; run with the folder store and with the S3 store (moto's S3 API).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles.s3_server import s3_server
from pipeline_harness import running_workers, start_run
from store.long_coder import long_coder
from temporalio.client import Client

from activities.store import open_store
from bench.history import tree
from contracts.agents import AgentChoice
from contracts.names import AGENT_RUN
from contracts.runs import RunState
from workers.sample.repo import build_sample

pytestmark = pytest.mark.slow

STEPS = 40
MAX_HISTORY_BYTES = 1_500_000
MAX_PAYLOAD_BYTES = 256_000


@pytest.fixture(scope="module")
def task_queue() -> str:
    """One queue for the module: the team budget the first run creates must keep a worker for the second."""
    return f"history-{uuid.uuid4()}"


@pytest.fixture(params=["folder", "s3"])
def store_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The workers' store configuration, as an operator sets it."""
    if request.param == "folder":
        monkeypatch.delenv("SPEC2SHIP_STORE", raising=False)
        yield "folder"
        return
    with s3_server() as server:
        for name, value in server.env(server.new_bucket()).items():
            monkeypatch.setenv(name, value)
        yield "s3"


async def test_a_forty_step_run_leaves_little_history(store_env: str, dev_client: Client, task_queue: str,
                                                      tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    coder = long_coder(paths["repo"], tmp_path, STEPS)
    agents = AgentChoice(coder=f"scripted:{coder}", reviewer=f"scripted:{paths['reviewer-approve.yaml']}",
                         judge=f"scripted:{paths['judge-fallback.yaml']}")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["greet-by-name.md"], agents)
        status = await handle.result()
    assert status.state is RunState.merged, status.reasons

    executions = await tree(dev_client, handle.id)
    agents_runs = [run for run in executions if run.workflow_type == AGENT_RUN]
    coder_runs = [run for run in agents_runs if "/coder/" in run.workflow_id]
    assert sum(run.activity_types()["call_model"] for run in coder_runs) == STEPS
    total = sum(run.size_bytes for run in executions)
    largest = max(run.max_payload_bytes() for run in executions)
    assert total <= MAX_HISTORY_BYTES, f"{total:,} bytes of history across {len(executions)} workflow runs"
    assert largest <= MAX_PAYLOAD_BYTES, f"a payload of {largest:,} bytes"

    # The conversation is in the store the workers were given, under the coder's own workflow id.
    scopes = {usage.scope: usage for usage in open_store(tmp_path / "data").scopes()}
    [coder_scope] = [scope for scope in scopes if "/coder/" in scope]
    assert coder_scope == coder_runs[0].workflow_id
    assert scopes[coder_scope].bytes > 36 * 12_000  # every 12 kB slice, once
