"""Reminders, escalation and expiry of a run waiting for a human, on the time-skipping server.

The sample policy says: remind after 4h, escalate after 24h, expire after 7d, owners alice and
platform-oncall. Days pass in seconds here; the activities (git, preview, forge) are all real.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pipeline_harness import running_workers, start_run
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.forge.local import list_pull_requests
from contracts.agents import AgentChoice
from contracts.names import APPROVE, budget_id, ledger_id
from contracts.runs import HumanAction, RunState, RunStatus
from workers.sample.repo import build_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"waits-{uuid.uuid4()}"


@pytest_asyncio.fixture
async def entities_stopped(skip_env: WorkflowEnvironment) -> AsyncIterator[None]:
    """Entity workflows left running on the shared time-skipping server would stall later tests."""
    yield
    for workflow_id in (budget_id("platform"), ledger_id("greeter-docs")):
        with contextlib.suppress(RPCError):  # already gone: nothing to stop
            await skip_env.client.get_workflow_handle(workflow_id).terminate("test over")


def _notes(repo: Path) -> list[str]:
    [pr] = list_pull_requests(repo)
    return [comment.body for comment in pr.comments if comment.kind == "comment"]


async def test_unanswered_run_is_reminded_escalated_and_expires(
    skip_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, entities_stopped: None
) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(skip_env.client, tmp_path / "data", task_queue):
        started = await skip_env.get_current_time()
        handle = await start_run(skip_env.client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        status: RunStatus = await handle.result()
        elapsed = await skip_env.get_current_time() - started
    assert status.state is RunState.expired
    assert elapsed >= timedelta(days=7)
    notes = _notes(paths["repo"])
    assert any(note.startswith("Reminder:") and "@alice" in note for note in notes), notes
    assert any(note.startswith("Escalation:") and "@platform-oncall" in note for note in notes), notes
    assert any("the run expired" in note for note in notes), notes
    [pr] = list_pull_requests(paths["repo"])
    assert pr.state == "open", "an expired run leaves the PR open for a person to finish"
    assert not list((tmp_path / "data" / "previews").glob("*.json"))


async def test_approval_after_a_reminder_merges(
    skip_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, entities_stopped: None
) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(skip_env.client, tmp_path / "data", task_queue):
        handle = await start_run(skip_env.client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        while (await handle.query("status", result_type=RunStatus)).state is not RunState.awaiting_human:
            await skip_env.sleep(timedelta(seconds=1))
        await skip_env.sleep(timedelta(hours=5))
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="back from lunch"))
        status = await handle.result()
    assert status.state is RunState.merged
    notes = _notes(paths["repo"])
    assert sum(note.startswith("Reminder:") for note in notes) == 1
    assert not any(note.startswith("Escalation:") for note in notes)
