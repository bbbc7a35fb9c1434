"""`spec2ship demo --json`, run as a user runs it, against the suite's dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_harness import running_workers
from temporalio.testing import WorkflowEnvironment

pytestmark = pytest.mark.slow


async def test_demo_shows_every_outcome_then_trust_and_dora_explain_it(dev_env: WorkflowEnvironment,
                                                                       tmp_path: Path) -> None:
    env = dict(os.environ, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
               SPEC2SHIP_TASK_QUEUE=f"demo-{tmp_path.name}")
    spec2ship = Path(sys.executable).parent / "spec2ship"
    done = await asyncio.to_thread(subprocess.run, [str(spec2ship), "demo", "--json", "--data-dir", str(tmp_path)],
                                   env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    outcomes = {run["name"]: (run["summary"]["state"], run["summary"]["decision"]) for run in result["runs"]}
    assert outcomes == {
        "greet by name": ("merged", "merge"),
        "document /hello": ("merged", "escalate"),
        "shout (patch)": ("rejected", "reject"),
        "API version": ("merged", "escalate"),
        "rewrite in Rust": ("failed", None),
    }
    refused = next(run for run in result["runs"] if run["name"] == "rewrite in Rust")
    assert refused["summary"]["reasons"][0].startswith("admission refused: team research")
    assert any("below the bar" in line for line in result["trust_explanation"])

    # The ledgers live on after the demo; a worker on their queue answers the CLI's queries.
    async with running_workers(dev_env.client, tmp_path / "after", env["SPEC2SHIP_TASK_QUEUE"]):
        trust = await asyncio.to_thread(subprocess.run, [str(spec2ship), "trust", "greeter-api", "--json"], env=env,
                                        capture_output=True, text=True, timeout=60)
        dora = await asyncio.to_thread(subprocess.run, [str(spec2ship), "dora", "greeter", "--json"], env=env,
                                       capture_output=True, text=True, timeout=60)
    assert trust.returncode == 0, trust.stderr
    report = json.loads(trust.stdout)
    assert report["service"] == "greeter-api" and 0 < report["trust"] < 0.8
    assert dora.returncode == 0, dora.stderr
    keys = json.loads(dora.stdout)
    assert keys["service"] == "greeter"
    assert keys["agent"]["merges"] == 1 and keys["human"]["merges"] == 0  # the patch run was rejected
    assert keys["all"]["change_failure_rate"] == 0.0
