"""Each benchmark's smallest configuration (`--smoke`) runs and prints one JSON object with its keys.

They keep the benchmarks working while the code under them changes; they never assert on speed.
Each runs `python -m bench NAME --smoke --json` from the repository root in a process of its own (the
benchmarks start their own dev server and workers, as an operator's run would).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def smoke(name: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench", name, "--smoke", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert result["benchmark"] == name and result["size"] == "smoke"
    assert isinstance(result["commit"], str) and isinstance(result["date"], str)
    return result


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.slow
def test_orchestration() -> None:
    result = smoke("orchestration")
    assert number(result["ratio_sequential"]) and result["ratio_sequential"] > 0
    assert number(result["ratio_concurrent"]) and result["ratio_concurrent"] > 0
    assert number(result["runs_per_minute"]) and result["runs_per_minute"] > 0
    assert result["shape"]["activities"] > 0 and result["shape"]["children"] > 0
    breakdown = result["where_time_goes"]
    assert 0 < breakdown["workflow_task_share"] <= 1
    assert breakdown["stages"] and all(number(stage["ms"]) for stage in breakdown["stages"].values())
    assert set(result["outcomes"]) == {"merged"}, "the measured run must be a whole run that merges"


@pytest.mark.slow
def test_agent_loop() -> None:
    result = smoke("agent-loop")
    assert isinstance(result["ms_per_step_overhead"], int | float)
    assert number(result["history_bytes_per_step_growth"]) and result["history_bytes_per_step_growth"] > 0
    assert isinstance(result["history_bytes"], int) and result["history_bytes"] > 0
    assert isinstance(result["max_payload_bytes"], int) and 0 < result["max_payload_bytes"] <= result["history_bytes"]
    assert {figures["steps"] for figures in result["by_steps"].values()} == {2, 4}
    assert all(figures["model_calls"] == figures["steps"] for figures in result["by_steps"].values())


@pytest.mark.slow
def test_admission() -> None:
    result = smoke("admission")
    assert result["runs"] == 3
    assert number(result["seconds"]) and number(result["p99_ms"])
    assert isinstance(result["errors"], int) and 0 <= result["errors"] <= result["runs"]


@pytest.mark.slow
def test_webhook() -> None:
    result = smoke("webhook")
    [figures] = result["rates"].values()
    assert number(figures["p50_ms"]) and number(figures["p99_ms"])
    assert figures["deliveries"] >= figures["issues"] > 0
    # At the smoke rate everything is taken, and every issue gets its run once (`lost` is counted, not assumed).
    assert figures["answers"] == {"202": figures["deliveries"]}
    assert (result["lost"], figures["lost"], figures["duplicates"]) == (0, 0, 0)


def test_inference() -> None:
    result = smoke("inference")
    if "skipped" in result:  # no torch/transformers here: one line says so
        assert "torch" in result["skipped"]
        return
    for figures in result["by_concurrency"].values():
        assert number(figures["activity_tok_s"]) and number(figures["direct_batched_tok_s"])


def test_unknown_benchmark_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


@pytest.mark.slow
def test_parked() -> None:
    result = smoke("parked")
    assert result["parked"] == result["runs"] == 2, result["states"]
    assert number(result["rss_mb_before"]) and number(result["rss_mb_after"])
    assert isinstance(result["kb_per_parked_run"], int | float)
