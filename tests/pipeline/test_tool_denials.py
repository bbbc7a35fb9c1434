"""Refusals that only the tool activity can see count toward the run's denial limit.

A secret value copied into a file is refused inside the `run_tool` activity (the workflow cannot know
the workspace's secrets). Since the `count-tool-denials` patch such refusals end the run like any
other; histories recorded before the patch still replay (tests/pipeline/test_replay.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, start_run
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.runs import RunState
from contracts.workspace import ToolCallRecord
from workers.sample.repo import build_sample, git

pytestmark = pytest.mark.slow
CANARY = "canary-7731-do-not-leak"


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"denials-{uuid.uuid4()}"


async def test_secret_copies_refused_by_the_tool_stop_the_run(dev_client: Client, task_queue: str,
                                                            tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    (paths["repo"] / ".env").write_text(f"API_TOKEN={CANARY}\n")
    git(paths["repo"], "add", "-f", ".env")
    git(paths["repo"], "commit", "-q", "-m", "a secret someone committed")
    writes = [{"name": "write_file", "arguments": {"path": f"greeter/leak{n}.py", "content": f"T = '{CANARY}'\n"}}
              for n in range(10)]
    script = tmp_path / "leaky-coder.yaml"
    script.write_text(yaml.safe_dump({"turns": [{"content": "copying the token", "tool_calls": writes},
                                                {"content": "done"}]}))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["shout.md"],
                                 AgentChoice(coder=f"scripted:{script}"))
        status = await handle.result()
        audit = await handle.query("tool_calls", result_type=list[ToolCallRecord])
    assert status.state is RunState.failed
    assert any("stopped after 8 denied tool calls" in reason for reason in status.reasons), status.reasons
    assert [record.status.value for record in audit] == ["denied"] * 8
    branches = git(paths["repo"], "branch", "--format=%(refname:short)").split()
    assert branches == ["main"], "nothing of the refused change may be left behind"
    assert git(paths["repo"], "grep", "-l", CANARY, "main").split() == ["main:.env"]
