"""A whole run whose coder is an OpenAI-compatible model named only in spec2ship.yaml.

The model is the local OpenAI double (real HTTP, answers validated by the official `openai` types); the
provider, the agent loop, the governed tools, the preview and the gate are the real ones.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from doubles.openai_server import OpenAIDouble, Reply, ScriptedToolCall
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.runs import RunState
from workers.sample.repo import README, build_sample

pytestmark = pytest.mark.slow
KEY = "sk-test-openai-0123456789abcdefghij"


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"openai-run-{uuid.uuid4()}"


async def test_an_openai_compatible_model_from_configuration_writes_the_change(
    dev_client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = build_sample(tmp_path)
    readme = README + "\n## API\n\n`GET /hello?name=Ada` answers `Hello, Ada`.\n"
    steps = [
        Reply(content="Reading the README.", tool_calls=[ScriptedToolCall(name="read_file",
                                                                          arguments={"path": "README.md"})]),
        Reply(content="Documenting.", tool_calls=[ScriptedToolCall(name="write_file",
                                                                   arguments={"path": "README.md", "content": readme})],
              input_tokens=900, output_tokens=120),
        Reply(content="The README documents /hello."),
    ]
    with OpenAIDouble(api_key=KEY, steps=steps) as model:
        config = tmp_path / "spec2ship.yaml"
        config.write_text(yaml.safe_dump({"models": [{
            "name": "qwen-coder", "provider": "openai", "base_url": model.base_url, "model": "qwen2.5-coder",
            "api_key_env": "TEST_OPENAI_KEY", "roles": ["coder"],
            "price": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}]}))
        monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
        monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
        async with running_workers(dev_client, tmp_path / "data", task_queue):
            handle = await start_run(dev_client, task_queue, paths["repo"], paths["document-hello.md"], AgentChoice())
            status = await wait_for_decision(handle)
            evidence = await handle.query("evidence", result_type=str)
            await handle.terminate("test over")
        requests = list(model.requests)
    assert status.state is RunState.awaiting_human, status.reasons
    assert status.checks[0].status.value == "passed"
    assert len(requests) == 3
    assert "- coder: `qwen-coder`" in evidence
    assert status.tokens == 11 + 7 + 900 + 120 + 11 + 7 and status.cost_usd > 0
    assert KEY not in evidence and KEY not in str(status)
    second = requests[1].body
    assert second["model"] == "qwen2.5-coder" and {tool["function"]["name"] for tool in second["tools"]} >= {
        "read_file", "write_file", "run_command"}
    [tool_result] = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_result["content"].startswith("# greeter")  # what read_file gave back, sent to the model
