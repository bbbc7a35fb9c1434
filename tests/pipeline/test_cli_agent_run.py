"""A CLI coding agent from the registry is the coder of a whole run, as one activity in the workspace.

The "agent" is a small script standing in for Claude Code / Codex / aider: it reads the prompt file it
is given and edits the workspace; its change then goes through the same review checks and gate.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.names import APPROVE
from contracts.runs import HumanAction, RunState

pytestmark = pytest.mark.slow

AGENT = textwrap.dedent("""\
    import pathlib, sys
    prompt = pathlib.Path(sys.argv[1]).read_text()
    assert "Document the hello endpoint" in prompt, "the agent must get the spec"
    readme = pathlib.Path("README.md")
    readme.write_text(readme.read_text() + "\\n## API\\n\\n`GET /hello?name=Ada` answers `Hello, Ada`.\\n")
    print("edited README.md")
""")


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"cli-agent-{uuid.uuid4()}"


async def test_a_cli_agent_from_configuration_writes_the_change(dev_client: Client, task_queue: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.sample.repo import build_sample

    agent = tmp_path / "fake_agent.py"
    agent.write_text(AGENT)
    config = tmp_path / "spec2ship.yaml"
    config.write_text(yaml.safe_dump({"models": [{
        "name": "local-cli", "provider": "cli", "command": f"{sys.executable} {agent} {{prompt_file}}",
        "roles": ["coder"], "timeout_s": 60}]}))
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    paths = build_sample(tmp_path)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"], AgentChoice())
        waiting = await wait_for_decision(handle)
        assert waiting.state is RunState.awaiting_human, waiting.reasons
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="read it"))
        status = await handle.result()
        [coder] = [run async for run in dev_client.list_workflows(f"WorkflowId STARTS_WITH '{handle.id}/coder/'")]
        history = await dev_client.get_workflow_handle(coder.id).fetch_history()
    assert status.state is RunState.merged
    scheduled = [event.activity_task_scheduled_event_attributes.activity_type.name for event in history.events
                 if event.HasField("activity_task_scheduled_event_attributes")]
    assert scheduled == ["run_cli_agent"]
    assert "Hello, Ada" in (paths["repo"] / "README.md").read_text()
