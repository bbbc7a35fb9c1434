"""A long AgentRun continues as new and loses nothing: its step count, governor state (denials, repeated
calls), usage, audit records and conversation go on in the next run of the chain.

The dev server here suggests continue-as-new after 30 history events (the `eager_env` fixture), so a run
of 14 steps continues several times; every run of the chain replays against today's code.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import yaml
from store.long_coder import long_coder
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.store import open_store
from activities.store.conversation import load
from bench.history import Execution, chain
from contracts.agent_run import AgentRunInput, AgentRunResult, AgentStatus
from contracts.agents import Attribution, ModelChoice, ModelTurn, Role, ToolCall
from contracts.forge import RepoRef
from contracts.workspace import ToolStatus, WorkspaceRef
from rules.gateway.grants import default_grant
from specs.models import Constraints
from workers.sample.repo import build_sample, git
from workers.worker import build_workers, run_workers
from workflows.agent_run import AgentRun

READS = 11
USAGE = 110  # tokens per turn, from long_coder's script


def _script(repo: Path, folder: Path) -> Path:
    """A denied write first, the same read twice (a repeat the loop detector must remember), slices, an answer."""
    base = yaml.safe_load(long_coder(repo, folder, READS + 4).read_text())
    reads = [turn for turn in base["turns"] if turn["tool_calls"] and turn["tool_calls"][0]["name"] == "read_file"]
    again = {"content": "Reading app.py.", "usage": reads[0]["usage"],
             "tool_calls": [{"name": "read_file", "arguments": {"path": "greeter/app.py"}}]}
    denied = {"content": "Changing CI.", "usage": reads[0]["usage"], "tool_calls": [
        {"name": "write_file", "arguments": {"path": ".github/workflows/ci.yml", "content": "on: push\n"}}]}
    turns = [denied, again, *reads[:READS // 2], again, *reads[READS // 2:READS],
             {"content": "done", "usage": reads[0]["usage"], "tool_calls": []}]
    script = folder / "coder-continues.yaml"
    script.write_text(yaml.safe_dump({"model": "scripted-long-coder", "turns": turns}, sort_keys=False))
    return script


async def _inputs(client: Client, run: Execution) -> AgentRunInput:
    started = run.events[0].workflow_execution_started_event_attributes
    [value] = await client.data_converter.decode(list(started.input.payloads), [AgentRunInput])
    assert isinstance(value, AgentRunInput)
    return value


async def _last_turn(client: Client, run: Execution) -> ModelTurn:
    completed = [e.activity_task_completed_event_attributes for e in run.events
                 if e.HasField("activity_task_completed_event_attributes")]
    scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name for e in run.events
                 if e.HasField("activity_task_scheduled_event_attributes")}
    last = [c for c in completed if scheduled[c.scheduled_event_id] == "call_model"][-1]
    [turn] = await client.data_converter.decode(list(last.result.payloads), [ModelTurn])
    assert isinstance(turn, ModelTurn)
    return turn


async def test_a_long_agent_run_continues_as_new_with_all_its_state(eager_env: WorkflowEnvironment,
                                                                     tmp_path: Path) -> None:
    client, queue, identity = eager_env.client, f"can-{uuid.uuid4().hex[:8]}", "can-test"
    paths = build_sample(tmp_path)
    repo = paths["repo"]
    script = _script(repo, tmp_path)
    steps = READS + 4  # the denied write, app.py twice, the slices, the answer
    workers = build_workers(client, data_dir=tmp_path / "data", task_queue=queue, identity=identity)
    workspace = WorkspaceRef(path=str(repo), task_queue=f"{queue}-workspace-{identity}", branch="main",
                             base_sha=git(repo, "rev-parse", "HEAD").strip(), repo=RepoRef(location=str(repo)))
    workflow_id = f"spec2ship/greeter/continues-{uuid.uuid4().hex[:6]}/coder/0-1"
    request = AgentRunInput(
        role_prompt="You are the coder.", task="Read the corpus.", workspace=workspace,
        model=ModelChoice(role=Role.coder, model=f"scripted:{script}", task_queue=queue),
        grant=default_grant(Role.coder, Constraints(paths=["greeter/**", "tests/**"])),
        attribution=Attribution(team="t", service="greeter", spec="continues", workflow_id=workflow_id,
                                role=Role.coder))
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        handle = await client.start_workflow(AgentRun.run, request, id=workflow_id, task_queue=queue,
                                             result_type=AgentRunResult)
        result = await handle.result()  # follows the chain to its last run
    finally:
        stop.set()
        await running

    assert (result.status, result.final_message, result.steps) == (AgentStatus.completed, "done", steps)
    assert result.usage.total == steps * USAGE
    assert [record.step for record in result.tool_calls] == list(range(1, steps))
    assert result.tool_calls[0].status is ToolStatus.denied
    assert all(record.status is ToolStatus.ok for record in result.tool_calls[1:])

    runs = await chain(client, workflow_id, handle.first_execution_run_id)
    assert len(runs) >= 3, f"{len(runs)} run(s): the server's suggestion to continue as new was not taken"
    repeated = ToolCall(id="any", name="read_file", arguments={"path": "greeter/app.py"}).digest()
    for run in runs[1:]:
        carried = (await _inputs(client, run)).carried
        assert carried is not None
        done = carried.step
        assert 1 <= done < steps
        assert carried.governor.denials == 1
        assert carried.governor.digests[repeated] == (2 if done > READS // 2 + 2 else 1)
        assert carried.usage.total == done * USAGE and carried.cost_usd == 0.0
        assert [record.step for record in carried.records] == list(range(1, done + 1))
        assert carried.conversation.messages + len(carried.pending) == 2 + 2 * done
        assert carried.continued == runs.index(run)

    final = await _last_turn(client, runs[-1])
    assert final.conversation is not None and final.conversation.messages == 2 + 2 * steps - 1
    stored = load(open_store(tmp_path / "data"), final.conversation)
    assert [m.role for m in stored.messages] == ["system", "user", *(["assistant", "tool"] * (steps - 1)),
                                                 "assistant"]
    assert stored.messages[3].content.startswith("denied:")  # the governor's answer to the denied write

    replayer = Replayer(workflows=[AgentRun], data_converter=pydantic_data_converter)
    for run in runs:
        replayed = await replayer.replay_workflow(run.history, raise_on_replay_failure=True)
        assert replayed.replay_failure is None
