"""Record SpecToShip and AgentRun histories for the replay tests.

Run by hand when a workflow change is deliberate and guarded (`workflow.patched`):

    .venv/bin/python tests/pipeline/record_histories.py

It runs the decision paths on a fresh dev server and writes one JSON file per workflow execution under
`tests/pipeline/histories/`. The replay test then proves today's code still replays yesterday's runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.agents import AgentChoice
from contracts.names import APPROVE, SEARCH_ATTRIBUTE_KEYS
from contracts.runs import HumanAction
from workers.sample.repo import APP_V1, build_sample
from workers.temporal_client import find_binary

OUT = Path(__file__).parent / "histories"


async def save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (OUT / f"{name}.json").write_text(json.dumps({"workflow_id": workflow_id, "history": json.loads(history.to_json())},
                                                 indent=1))
    async for child in client.list_workflows(f"WorkflowId STARTS_WITH '{workflow_id}/'"):
        role = child.id.removeprefix(workflow_id + "/").replace("/", "-")
        child_history = await client.get_workflow_handle(child.id, run_id=child.run_id).fetch_history()
        (OUT / f"{name}.agent-{role}.json").write_text(
            json.dumps({"workflow_id": child.id, "history": json.loads(child_history.to_json())}, indent=1))


@contextlib.asynccontextmanager
async def recording() -> AsyncIterator[tuple[Client, str, Path]]:
    """A fresh dev server with workers on a new queue: (client, queue, a scratch folder)."""
    OUT.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTE_KEYS, dev_server_log_level="error")
    tmp = Path(tempfile.mkdtemp())
    queue = f"record-{uuid.uuid4()}"
    try:
        async with running_workers(env.client, tmp / "data", queue):
            yield env.client, queue, tmp
    finally:
        await env.shutdown()


async def main() -> None:
    async with recording() as (client, queue, tmp):
        paths = build_sample(tmp / "a")
        handle = await start_run(client, queue, paths["repo"], paths["greet-by-name.md"], AgentChoice(
            coder=f"scripted:{paths['coder-greet.yaml']}", reviewer=f"scripted:{paths['reviewer-approve.yaml']}",
            judge=f"scripted:{paths['judge-fallback.yaml']}"))
        await handle.result()
        await save(client, handle.id, "l5-merged")

        paths = build_sample(tmp / "b")
        handle = await start_run(client, queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        await wait_for_decision(handle)
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="recorded"))
        await handle.result()
        await save(client, handle.id, "l3-approved")

        paths = build_sample(tmp / "c")
        patch = tmp / "shout.diff"
        patch.write_text("".join(difflib.unified_diff(
            APP_V1.splitlines(True), APP_V1.replace('"Hello, world"', '"HELLO"').splitlines(True),
            "a/greeter/app.py", "b/greeter/app.py")))
        handle = await start_run(client, queue, paths["repo"], paths["shout.md"],
                                 AgentChoice(coder=f"patch:{patch}"))
        await handle.result()
        await save(client, handle.id, "rejected")


if __name__ == "__main__":
    asyncio.run(main())
