"""Today's workflow code must replay the histories recorded from earlier versions.

A change that alters history without `workflow.patched` fails here with a nondeterminism error.
Re-record only for deliberate, guarded changes: `python tests/pipeline/record_histories.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.agent_run import AgentRun
from workflows.spec_to_ship import SpecToShip

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    names = {path.name.split(".")[0] for path in HISTORIES}
    assert {"l5-merged", "l3-approved", "rejected"} <= names
    assert any(".agent-" in path.name for path in HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replays_without_nondeterminism(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    replayer = Replayer(workflows=[SpecToShip, AgentRun], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
