"""A run whose team budget runs out part-way stops at the next safe point and escalates, and the
unused reservation goes back whatever the ending."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.budget import BudgetConfig, BudgetView
from contracts.names import CANCEL, SHOW, budget_id
from contracts.runs import HumanAction, RunState
from workers.cli_budget import configure_budget
from workers.sample.repo import README, build_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"budget-run-{uuid.uuid4()}"


async def test_budget_running_out_mid_run_escalates(dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    team = f"tight-{uuid.uuid4().hex[:6]}"
    paths = build_sample(tmp_path)
    spec = tmp_path / "docs.md"
    spec.write_text(paths["document-hello.md"].read_text().replace("team: platform", f"team: {team}"))
    script = tmp_path / "hungry-coder.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "documenting", "usage": {"input_tokens": 85_000, "output_tokens": 5_000},
         "tool_calls": [{"name": "write_file", "arguments": {"path": "README.md",
                                                              "content": README + "\n`GET /hello` greets.\n"}}]},
        {"content": "checking", "usage": {"input_tokens": 18_000, "output_tokens": 2_000},
         "tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},
        {"content": "polishing (never reached: no budget left)", "usage": {"input_tokens": 1, "output_tokens": 1}},
    ]}))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        await configure_budget(dev_client, team, BudgetConfig(tokens=112_000), task_queue)
        handle = await start_run(dev_client, task_queue, paths["repo"], spec, AgentChoice(coder=f"scripted:{script}"))
        waiting = await wait_for_decision(handle)
        await handle.execute_update(CANCEL, HumanAction(actor="alice", reason="out of budget this month"))
        ended = await handle.result()
        view = await dev_client.get_workflow_handle(budget_id(team)).query(SHOW, result_type=BudgetView)
    assert waiting.state is RunState.awaiting_human, waiting.reasons
    assert any("budget exhausted" in reason for reason in waiting.reasons), waiting.reasons
    assert waiting.tokens == 110_000  # the third call was never made
    assert ended.state is RunState.cancelled
    assert view.used.tokens == 110_000  # every call was committed, none twice
    assert view.reserved.tokens == 0 and view.open_reservations == 0  # released on cancellation too
