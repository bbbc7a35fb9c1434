"""The patch register: every `workflow.patched` id is listed once, with histories that replay both ways."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

import workflows
from workflows import patches
from workflows.agent_run import AgentRun
from workflows.patches import REGISTER, Patch
from workflows.spec_to_ship import SpecToShip

HISTORIES = Path(__file__).parent / "histories"
WORKFLOW_FILES = sorted(Path(workflows.__file__).parent.rglob("*.py"))


def _patched_ids() -> dict[str, list[str]]:
    """Patch id -> the files whose code calls `workflow.patched` with it (by literal or register constant)."""
    constants = {name: value.id for name, value in vars(patches).items() if isinstance(value, Patch)}
    found: dict[str, list[str]] = {}
    for path in WORKFLOW_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"patched", "deprecate_patch"} and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                key = str(arg.value)
            elif isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.attr == "id":
                key = constants.get(arg.value.id, f"<unknown constant {arg.value.id}>")
            else:
                key = f"<not a register id: {ast.unparse(arg)}>"
            found.setdefault(key, []).append(path.name)
    return found


def _markers(name: str) -> set[str]:
    recorded = json.loads((HISTORIES / f"{name}.json").read_text())
    ids = set()
    for event in recorded["history"]["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                ids.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return ids


async def _replay(name: str) -> None:
    recorded = json.loads((HISTORIES / f"{name}.json").read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    replayer = Replayer(workflows=[SpecToShip, AgentRun], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_every_patched_call_uses_a_registered_id_and_every_registered_id_is_used() -> None:
    used = _patched_ids()
    registered = {patch.id for patch in REGISTER}
    assert sorted(used) == sorted(registered), f"in code: {used}; registered: {sorted(registered)}"
    assert len(registered) == len(REGISTER), "an id is registered twice"


@pytest.mark.parametrize("patch", REGISTER, ids=[patch.id for patch in REGISTER])
async def test_histories_before_and_after_the_patch_replay(patch: Patch) -> None:
    assert patch.why and patch.added, "say why the patch exists and when it came"
    for name in patch.before:
        assert patch.id not in _markers(name), f"{name} was meant to predate {patch.id}"
        await _replay(name)
    assert patch.id in _markers(patch.after), f"{patch.after} does not take the {patch.id} branch"
    await _replay(patch.after)
