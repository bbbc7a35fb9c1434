"""A whole run seeded with secrets in the spec, a repository file, the model's output and a tool's
arguments: not one of them is in any payload of any history of the run, nor on the forge."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from activities.forge.local import LocalForge, list_pull_requests
from contracts.agents import AgentChoice
from contracts.names import REJECT
from contracts.runs import HumanAction, RunState
from workers.sample.repo import build_sample, git

pytestmark = pytest.mark.slow

IN_SPEC = "ghp_" + "S" * 36
IN_FILE = "sk_live_" + "F" * 24
IN_MODEL_OUTPUT = "AKIA" + "M" * 16
IN_TOOL_ARGUMENTS = "xoxb-" + "T" * 24
SECRETS = [IN_SPEC, IN_FILE, IN_MODEL_OUTPUT, IN_TOOL_ARGUMENTS]


def _coder() -> dict[str, object]:
    usage = {"input_tokens": 100, "output_tokens": 10}
    return {"model": "scripted-coder", "turns": [
        {"content": f"Reading the settings; the deploy key is {IN_MODEL_OUTPUT}.", "usage": usage,
         "tool_calls": [{"name": "read_file", "arguments": {"path": "greeter/settings.py"}}]},
        {"content": "Documenting.", "usage": usage, "tool_calls": [{"name": "write_file", "arguments": {
            "path": "README.md", "content": f"# greeter\n\nCall `/hello`. Slack: {IN_TOOL_ARGUMENTS}\n"}}]},
        {"content": "Done.", "usage": usage, "tool_calls": []},
    ]}


def _payload_texts(node: Any) -> list[str]:
    """Every payload's decoded data in a history's JSON, and every other string in it."""
    found: list[str] = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, str) and "metadata" in node:
            found.append(base64.b64decode(data).decode("utf-8", errors="replace"))
        for value in node.values():
            found.extend(_payload_texts(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_payload_texts(item))
    elif isinstance(node, str):
        found.append(node)
    return found


async def test_no_seeded_secret_reaches_any_history_or_the_forge(dev_client: Client, tmp_path: Path) -> None:
    queue = f"secrets-{uuid.uuid4()}"
    paths = build_sample(tmp_path)
    repo = paths["repo"]
    (repo / "greeter" / "settings.py").write_text(f'PAYMENTS_KEY = "{IN_FILE}"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "settings")
    spec = tmp_path / "document.md"
    spec.write_text(paths["document-hello.md"].read_text().replace(
        "The README should say", f"(The old token {IN_SPEC} was revoked.) The README should say"))
    script = tmp_path / "coder.yaml"
    script.write_text(yaml.safe_dump(_coder(), sort_keys=False))
    async with running_workers(dev_client, tmp_path / "data", queue):
        handle = await start_run(dev_client, queue, repo, spec, AgentChoice(coder=f"scripted:{script}"))
        waiting = await wait_for_decision(handle)
        assert waiting.state is RunState.awaiting_human, waiting.reasons
        await handle.execute_update(REJECT, HumanAction(actor="alice", reason="secrets test"))
        await handle.result()
        children = dev_client.list_workflows(f"WorkflowId STARTS_WITH '{handle.id}/'")
        ids = [handle.id] + [run.id async for run in children]
        histories = [await dev_client.get_workflow_handle(workflow_id).fetch_history() for workflow_id in ids]
    assert len(histories) >= 2, "the coder's AgentRun is missing"
    texts = [text for history in histories for text in _payload_texts(json.loads(history.to_json()))]
    assert any("[REDACTED]" in text for text in texts), "nothing was redacted: the secrets never entered"
    for secret in SECRETS:
        assert not [text for text in texts if secret in text], f"{secret[:6]}... is in a history"
    [pr] = list_pull_requests(repo)
    published = [pr.title, pr.body, *(comment.body for comment in pr.comments)]
    published += [note.body for note in LocalForge(repo).list_notes()]
    for secret in SECRETS:
        assert not [text for text in published if secret in text], f"{secret[:6]}... is on the forge"
