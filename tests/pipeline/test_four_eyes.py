"""Four eyes: whoever asked for a change cannot approve or override it (the policy's default), through a
Temporal Update, a Signal, or the CLI (the GitHub comment case is in tests/e2e)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, wait_for_decision
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef
from contracts.names import APPROVE, OVERRIDE, STATUS
from contracts.runs import HumanAction, RunState, RunStatus
from workers.runs import submit_run
from workers.sample.repo import POLICY, build_sample, git

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"four-eyes-{uuid.uuid4()}"


async def _docs_run(client: Client, queue: str, tmp_path: Path, requested_by: str,
                    four_eyes: bool = True) -> WorkflowHandle[object, RunStatus]:
    paths = build_sample(tmp_path)
    if not four_eyes:
        (paths["repo"] / ".spec2ship" / "policy.yaml").write_text(yaml.safe_dump({**POLICY, "four_eyes": False}))
        git(paths["repo"], "commit", "-qam", "no four eyes")
    ref = RepoRef(kind=ForgeKind.local, location=str(paths["repo"]))
    handle = await submit_run(client, ref, paths["document-hello.md"].read_text(), "document-hello.md",
                              AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"), task_queue=queue,
                              workflow_id=f"four-eyes-{uuid.uuid4().hex[:8]}", requested_by=requested_by)
    waiting = await wait_for_decision(handle)
    assert waiting.state is RunState.awaiting_human, waiting.reasons
    return handle


async def test_the_requester_can_neither_approve_nor_override_and_another_person_can(
        dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await _docs_run(dev_client, task_queue, tmp_path, requested_by="alice")
        for update, action in ((APPROVE, HumanAction(actor="alice")), (APPROVE, HumanAction(actor=" Alice ")),
                               (OVERRIDE, HumanAction(actor="alice", reason="mine", decision="merge"))):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(update, action)
            assert "four eyes: " in str(refused.value.cause) and "someone else must" in str(refused.value.cause)
        await handle.signal(APPROVE, HumanAction(actor="alice", reason="a signal, not an update"))
        await asyncio.sleep(1.0)
        still = await handle.query(STATUS, result_type=RunStatus)
        assert (still.state, still.human_actions, still.requested_by) == (RunState.awaiting_human, [], "alice")
        await handle.execute_update(APPROVE, HumanAction(actor="bob", reason="read the evidence"))
        done = await handle.result()
        evidence = await handle.query("evidence", result_type=str)
    assert done.state is RunState.merged
    assert done.human_actions == ["approve by bob: read the evidence"]
    assert "requested by alice" in evidence and "approve by bob: read the evidence" in evidence


async def test_a_policy_without_four_eyes_lets_the_requester_approve(dev_client: Client, task_queue: str,
                                                                     tmp_path: Path) -> None:
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await _docs_run(dev_client, task_queue, tmp_path, requested_by="alice", four_eyes=False)
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="solo team"))
        done = await handle.result()
    assert done.state is RunState.merged
