"""An MCP tool granted to the coder by the worker's configuration is offered to the model and called
through the gateway in a whole run; an ungranted one is refused."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.workspace import ToolCallRecord
from workers.sample.repo import build_sample

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install -e '.[mcp]')")
pytestmark = pytest.mark.slow
SERVER = Path(__file__).parents[1] / "governance" / "governance_mcp_server.py"


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"mcp-{uuid.uuid4()}"


async def test_granted_mcp_tool_is_offered_and_called(dev_client: Client, task_queue: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mcp.yaml"
    config.write_text(yaml.safe_dump({
        "servers": [{"name": "files", "command": sys.executable, "args": [str(SERVER)], "timeout_s": 30,
                     "read_only_paths": [str(SERVER)]}],
        "grants": {"coder": ["mcp__files__echo"]},
    }))
    monkeypatch.setenv("SPEC2SHIP_MCP_CONFIG", str(config))
    paths = build_sample(tmp_path)
    script = tmp_path / "mcp-coder.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "asking the MCP server", "tool_calls": [
            {"name": "mcp__files__echo", "arguments": {"text": "hello from the agent"}},
            {"name": "mcp__files__env_dump", "arguments": {}}]},
        {"content": "documenting", "tool_calls": [{"name": "write_file", "arguments": {
            "path": "README.md", "content": "# greeter\n\n`GET /hello` greets.\n"}}]},
        {"content": "done"},
    ]}))
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"],
                                 AgentChoice(coder=f"scripted:{script}"))
        waiting = await wait_for_decision(handle)
        audit = await handle.query("tool_calls", result_type=list[ToolCallRecord])
        await handle.terminate("test over")
    assert waiting.state.value == "awaiting_human", waiting.reasons
    calls = [(record.tool, record.status.value) for record in audit]
    assert calls[:2] == [("mcp__files__echo", "ok"), ("mcp__files__env_dump", "denied")], calls
    assert ("write_file", "ok") in calls
