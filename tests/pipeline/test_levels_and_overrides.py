"""The remaining decision paths as whole runs: L1 comments only, L2 waits, L4 merges once the service has
earned trust, and a person overriding the gate either way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from activities.forge.local import list_notes, list_pull_requests
from activities.ledger.activities import LedgerActivities, query_trust
from contracts.agents import AgentChoice
from contracts.ledger import OutcomeRecord
from contracts.names import OVERRIDE
from contracts.runs import HumanAction, RunState
from workers.sample.repo import build_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"levels-{uuid.uuid4()}"


def _spec(paths: dict[str, Path], tmp_path: Path, service: str, autonomy: str | None = None) -> Path:
    text = paths["api-version.md"].read_text().replace("service: greeter-api", f"service: {service}")
    if autonomy:
        text = text.replace("kind: feature", f"kind: feature\nautonomy: {autonomy}")
    spec = tmp_path / f"{service}-{autonomy or 'policy'}.md"
    spec.write_text(text)
    return spec


def _policy_l4(repo: Path, service: str) -> None:
    policy = repo / ".spec2ship" / "policy.yaml"
    policy.write_text(policy.read_text().replace("greeter-api:", f"{service}:"))
    from workers.sample.repo import git

    git(repo, "commit", "-qam", f"policy: {service} at L4")


def _agents(paths: dict[str, Path]) -> AgentChoice:
    return AgentChoice(coder=f"scripted:{paths['coder-version.yaml']}",
                       reviewer=f"scripted:{paths['reviewer-approve.yaml']}")


async def test_l1_only_comments_and_opens_no_pull_request(dev_client: Client, task_queue: str,
                                                          tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(paths, tmp_path, "greeter-api", "L1"),
                                 _agents(paths))
        status = await handle.result()
    assert status.state is RunState.commented and status.decision == "comment_only"
    assert list_pull_requests(paths["repo"]) == []
    assert any("nothing will be merged" in note.body for note in list_notes(paths["repo"]))


async def test_l2_waits_for_a_human_who_overrides_to_reject(dev_client: Client, task_queue: str,
                                                           tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(paths, tmp_path, "greeter-api", "L2"),
                                 _agents(paths))
        waiting = await wait_for_decision(handle)
        assert waiting.decision == "escalate" and "L2 always waits for a human decision" in waiting.reasons
        await handle.execute_update(OVERRIDE, HumanAction(actor="bob", reason="wrong approach", decision="reject"))
        status = await handle.result()
    assert status.state is RunState.rejected
    assert "override by bob: wrong approach" in status.human_actions
    assert list_pull_requests(paths["repo"])[0].state == "closed"


async def test_l4_merges_on_its_own_once_the_service_has_earned_trust(dev_client: Client, task_queue: str,
                                                                     tmp_path: Path) -> None:
    service = f"trusted-{uuid.uuid4().hex[:6]}"
    paths = build_sample(tmp_path)
    _policy_l4(paths["repo"], service)
    ledger = LedgerActivities(dev_client, task_queue)
    finished = datetime.now(UTC) - timedelta(hours=2)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        for n in range(20):  # a clean record: 20 agent-made merges that stayed merged
            await ledger.record_outcome(OutcomeRecord(
                workflow_id=f"earlier/{service}/{n}", service=service, team="platform", spec_title="earlier",
                kind="feature", state=RunState.merged, decision="merge", level="L4",
                started_at=finished - timedelta(minutes=n + 5), finished_at=finished - timedelta(minutes=n)))
        for _ in range(50):
            if (await query_trust(dev_client, service)).runs == 20:
                break
        assert (await query_trust(dev_client, service)).trust >= 0.8
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(paths, tmp_path, service),
                                 _agents(paths))
        status = await handle.result()
    assert status.state is RunState.merged, status.reasons
    assert any("clears the bar 0.80" in reason for reason in status.reasons)
    assert any(reason.startswith("evidence score 100/100: pass") for reason in status.reasons)


async def test_a_person_overrides_an_escalation_to_merge(dev_client: Client, task_queue: str,
                                                         tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        await wait_for_decision(handle)
        await handle.execute_update(OVERRIDE, HumanAction(actor="carol", reason="release today", decision="merge"))
        status = await handle.result()
    assert status.state is RunState.merged
    assert "override by carol: release today" in status.human_actions
