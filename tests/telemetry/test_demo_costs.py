"""`spec2ship costs` shows what `spec2ship demo` spent, and the demo leaves traces: run as a user runs them,
in one folder, with no server running (the demo starts its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC2SHIP = Path(sys.executable).parent / "spec2ship"
# Variables of the surrounding shell that would point the commands elsewhere.
OUTSIDE = ("SPEC2SHIP_DATA_DIR", "SPEC2SHIP_CONFIG", "OTEL_EXPORTER_OTLP_ENDPOINT",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "SPEC2SHIP_DEFAULT_CODER", "SPEC2SHIP_DEFAULT_REVIEWER",
           "SPEC2SHIP_DEFAULT_JUDGE")


def spec2ship(*args: str, cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(SPEC2SHIP), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"spec2ship {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


def test_costs_by_service_shows_the_demos_model_calls(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in OUTSIDE}
    # Nothing answers there, so the demo starts (and stops) a dev server of its own, as on a fresh laptop:
    # its ledgers and budgets are then its own, not the ones other tests of this session left on theirs.
    env |= {"TEMPORAL_ADDRESS": "127.0.0.1:1", "SPEC2SHIP_TASK_QUEUE": f"demo-costs-{uuid.uuid4().hex[:8]}",
            "COLUMNS": "200"}
    demo = json.loads(spec2ship("demo", "--json", cwd=tmp_path, env=env, timeout=400).stdout)
    spent: dict[str, int] = defaultdict(int)
    for run in demo["runs"]:
        if run["summary"]["tokens"]:
            spent[run["summary"]["service"]] += run["summary"]["tokens"]
    assert len(spent) >= 3, demo  # merged, escalated and rejected runs all called models

    # In the same folder, `costs` reads what the demo's workers recorded there ...
    rows = json.loads(spec2ship("costs", "--by", "service", "--json", cwd=tmp_path, env=env).stdout)
    assert {row["key"]: row["input_tokens"] + row["output_tokens"] for row in rows} == spent
    table = spec2ship("costs", "--by", "service", cwd=tmp_path, env=env).stdout
    assert all(service in table for service in spent) and "total" in table
    # ... and from anywhere else with SPEC2SHIP_DATA_DIR naming that folder's state.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = spec2ship("costs", "--by", "service", "--json", cwd=elsewhere,
                      env=env | {"SPEC2SHIP_DATA_DIR": str(tmp_path / ".spec2ship")}).stdout
    assert json.loads(again) == rows

    # The demo's telemetry went to the same folder: workflow, activity and GenAI spans, flushed on exit.
    lines = (tmp_path / ".spec2ship" / "telemetry" / "spans.jsonl").read_text().splitlines()
    names = {json.loads(line)["name"] for line in lines}
    assert {"RunWorkflow:SpecToShip", "RunWorkflow:AgentRun", "RunActivity:call_model"} <= names
    assert any(name.startswith("chat scripted:") for name in names)
    assert any(name.startswith("execute_tool ") for name in names)
