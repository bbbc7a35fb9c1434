"""Whole runs on the real dev server, one per decision path of the trust gate and per bad input."""

from __future__ import annotations

import asyncio
import difflib
import json
import uuid
from pathlib import Path

import pytest
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client, WorkflowUpdateFailedError

from activities.forge.gitcli import Git
from activities.forge.local import list_pull_requests
from contracts.agents import AgentChoice
from contracts.budget import BudgetConfig
from contracts.names import APPROVE, REJECT, REQUEST_CHANGES
from contracts.runs import HumanAction, RunState, RunStatus, StageRecord
from contracts.workspace import ToolCallRecord
from workers.cli_budget import configure_budget
from workers.sample.repo import APP_V1, build_sample, git

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_queue() -> str:
    """One queue for the module, as in production: the team budgets and service ledgers these runs
    create are entity workflows that outlive a test and must keep a worker polling their queue."""
    return f"pipeline-{uuid.uuid4()}"


def _patch(tmp_path: Path, old: str, new: str, name: str = "change.diff", path: str = "greeter/app.py") -> Path:
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))
    target = tmp_path / name
    target.write_text(diff)
    return target


def _branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").split()


def _main_file(repo: Path, path: str) -> str:
    return Git(repo).run("show", f"main:{path}", check=False).stdout


async def test_l5_change_merges_with_evidence(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    agents = AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}",
                         reviewer=f"scripted:{paths['reviewer-approve.yaml']}",
                         judge=f"scripted:{paths['judge-fallback.yaml']}")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["greet-by-name.md"], agents)
        status = await handle.result()
        evidence = await handle.query("evidence", result_type=str)
        audit = await handle.query("tool_calls", result_type=list[ToolCallRecord])
    assert status.state is RunState.merged, status.reasons
    assert {c.id: c.status.value for c in status.checks} == {
        "hello-by-name": "passed", "unit-tests": "passed", "friendly-fallback": "passed"}
    assert 'f"Hello, {name}"' in _main_file(paths["repo"], "greeter/app.py")
    [pr] = list_pull_requests(paths["repo"])
    assert pr.state == "merged"
    assert sum(1 for c in pr.comments if c.kind == "evidence") == 1
    assert "Decision: **merge** (L5)" in evidence and status.tokens > 0
    assert [(r.role.value, r.tool, r.status.value) for r in audit][:4] == [
        ("coder", "read_file", "ok"), ("coder", "write_file", "ok"), ("coder", "write_file", "ok"),
        ("coder", "run_command", "ok")]
    assert {r.role.value for r in audit} == {"coder", "reviewer", "validator"}
    assert all(len(r.args_digest) == 16 for r in audit)
    assert not list((tmp_path / "data" / "workspaces").glob("*")), "workspace left behind"


async def test_l3_escalates_then_a_person_approves(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        waiting = await wait_for_decision(handle)
        assert waiting.state is RunState.awaiting_human
        assert "L3 always waits for a human decision" in waiting.reasons
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(REJECT, HumanAction(actor="bob", reason=""))
        assert "reason is required" in str(refused.value.cause)
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="docs read well"))
        status: RunStatus = await handle.result()
    assert status.state is RunState.merged
    assert "approve by alice: docs read well" in status.human_actions
    assert "/hello" in _main_file(paths["repo"], "README.md")


async def test_failing_criterion_rejects_even_at_l5(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    patch = _patch(tmp_path, APP_V1, APP_V1.replace('"Hello, world"', '"HELLO, WORLD"'))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["shout.md"],
                                 AgentChoice(coder=f"patch:{patch}"))
        status = await handle.result()
    assert status.state is RunState.rejected
    assert any("deterministic checks failed: unit-tests" in r for r in status.reasons)
    [pr] = list_pull_requests(paths["repo"])
    assert pr.state == "closed"
    assert "HELLO" not in _main_file(paths["repo"], "greeter/app.py")


async def test_l4_without_track_record_escalates_and_reject_closes(dev_client: Client, task_queue: str,
                                                                  tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["api-version.md"], AgentChoice(
            coder=f"scripted:{paths['coder-version.yaml']}", reviewer=f"scripted:{paths['reviewer-approve.yaml']}"))
        waiting = await wait_for_decision(handle)
        assert waiting.decision == "escalate"
        assert any("trust" in r and "below the bar" in r for r in waiting.reasons)
        await handle.execute_update(REJECT, HumanAction(actor="alice", reason="not now"))
        status = await handle.result()
    assert status.state is RunState.rejected
    assert list_pull_requests(paths["repo"])[0].state == "closed"


async def test_request_changes_sends_the_change_back(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
        await wait_for_decision(handle)
        await handle.execute_update(REQUEST_CHANGES, HumanAction(actor="alice", reason="mention the port"))

        async def coder_runs() -> int:
            stages = await handle.query("timeline", result_type=list[StageRecord])
            return sum(1 for stage in stages if stage.stage == "agent:coder")

        while await coder_runs() < 2:  # the status may still read "awaiting_human" from before the update
            await asyncio.sleep(0.2)
        again = await wait_for_decision(handle)
        assert again.state is RunState.awaiting_human
        timeline = await handle.query("timeline", result_type=list[StageRecord])
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="ok"))
        status = await handle.result()
    assert status.state is RunState.merged
    assert sum(1 for stage in timeline if stage.stage == "agent:coder") == 2


async def test_patch_that_does_not_apply_fails_cleanly(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    patch = _patch(tmp_path, "nothing like this\n", "at all\n")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["shout.md"],
                                 AgentChoice(coder=f"patch:{patch}"))
        status = await handle.result()
    assert status.state is RunState.failed
    assert any("does not apply" in reason for reason in status.reasons), status.reasons
    assert _branches(paths["repo"]) == ["main"], "a half-made branch was left behind"
    assert list_pull_requests(paths["repo"]) == []


async def test_write_outside_allowed_paths_is_refused(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    patch = _patch(tmp_path, "", "steps: []\n", path=".github/workflows/x.yml")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["shout.md"],
                                 AgentChoice(coder=f"patch:{patch}"))
        status = await handle.result()
    assert status.state is RunState.failed
    assert any("outside the paths the spec allows" in reason for reason in status.reasons), status.reasons
    assert _branches(paths["repo"]) == ["main"]


async def test_invalid_spec_fails_with_located_problems(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    bad = tmp_path / "bad.md"
    bad.write_text(paths["shout.md"].read_text().replace("kind: feature", "kind: featur"))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], bad, AgentChoice(coder="scripted:x"))
        status = await handle.result()
    assert status.state is RunState.failed
    expected = ("bad.md:6: kind: unknown kind 'featur'; expected one of feature, bugfix, chore, refactor, "
                "dependency, docs")
    assert status.reasons == [expected]


async def test_preview_that_never_gets_ready_rejects(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    spec = tmp_path / "never-ready.md"
    spec.write_text(paths["greet-by-name.md"].read_text()
                    .replace("ready: /healthz", "ready: /never").replace("ready_timeout: 30", "ready_timeout: 2"))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], spec,
                                 AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}"))
        status = await handle.result()
    assert status.state is RunState.rejected
    assert any("hello-by-name" in reason for reason in status.reasons)
    assert not list((tmp_path / "data" / "previews").glob("*.json")), "preview record left behind"


async def test_budget_refusal_starts_nothing(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        await configure_budget(dev_client, "research", BudgetConfig(tokens=200_000), task_queue)
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["rewrite-in-rust.md"],
                                 AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}"))
        status = await handle.result()
    assert status.state is RunState.failed
    assert any(reason.startswith("admission refused") and "900,000" in reason for reason in status.reasons)
    assert _branches(paths["repo"]) == ["main"]
    assert json.dumps(status.model_dump(mode="json"))
