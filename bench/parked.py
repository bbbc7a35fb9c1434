"""Parked runs: what a run waiting on a person costs the worker that holds it in its cache.

Runs of the demo's documentation spec (an L3 service: a person approves) go through every stage and then
wait at the gate for a decision, as real runs wait for hours. The worker runs in this process with the
default cache (SPEC2SHIP_WORKFLOW_CACHE, 1000), so every parked run and its children stay cached; the
figure is the growth of this process's resident memory per parked run, after a few warm-up runs have
loaded what every run loads.

    python -m bench parked [--quick|--smoke] [--json]

Figures: `runs`, `kb_per_parked_run` (resident memory growth / parked runs; the goal is under 1024),
`rss_mb_before`, `rss_mb_after`, `seconds_to_park` (the whole batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from temporalio.service import RPCError

from bench import system
from bench.common import Report, rounded, run_benchmark, tally_logs

SIZES = {"smoke": (2, 2), "quick": (30, 2), "full": (120, 3)}  # parked runs measured, warm-up runs
TEAM = "platform"  # the documentation spec's team
PARK_DEADLINE_S = {"smoke": 120.0, "quick": 100.0, "full": 600.0}


async def state_of(handle: system.RunHandle) -> str:
    status = await handle.query(system.STATUS, result_type=system.RunStatus)
    return str(status.state)


async def park(handles: Sequence[system.RunHandle], deadline: float) -> Counter[str]:
    """Poll until every run waits for a person (or has ended some other way), or the deadline passes."""
    states: Counter[str] = Counter()
    while time.monotonic() < deadline:
        states = Counter(await asyncio.gather(*(state_of(handle) for handle in handles)))
        if states["running"] == 0:
            break
        await asyncio.sleep(1.0)
    return states


def resident_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


async def batch(client: Any, queue: str, made: system.Sample, count: int, deadline_s: float) -> tuple[
        list[system.RunHandle], Counter[str]]:
    scripted = {name: f"scripted:{path}" for name, path in made.inputs.items() if name.endswith(".yaml")}
    agents = system.AgentChoice(coder=scripted["coder-docs.yaml"], reviewer=scripted["reviewer-approve.yaml"],
                                judge=scripted["judge-fallback.yaml"])
    handles = [await system.start_spec(client, queue, made.inputs["document-hello.md"], made.repo, agents,
                                       workflow_id=f"bench-parked-{uuid.uuid4().hex[:10]}") for _ in range(count)]
    return handles, await park(handles, time.monotonic() + deadline_s)


async def measure(size: str, report: Report) -> dict[str, Any]:
    runs, warm = SIZES[size]
    tally = tally_logs()
    with tempfile.TemporaryDirectory(prefix="spec2ship-bench-") as folder:
        env = await system.start_server()
        try:
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            made = system.sample(Path(folder) / "sample")
            async with system.spec2ship_workers(env.client, Path(folder) / "data", queue):
                # Room for every run (each reserves its spec's estimate until it ends).
                await system.give_team_budget(env.client, queue, TEAM, 1_000_000_000)
                _, warm_states = await batch(env.client, queue, made, warm, PARK_DEADLINE_S[size])
                await asyncio.sleep(1.0)
                before = resident_mb()
                started = time.monotonic()
                handles, states = await batch(env.client, queue, made, runs, PARK_DEADLINE_S[size])
                took = time.monotonic() - started
                await asyncio.sleep(2.0)
                after = resident_mb()
                for handle in handles:
                    with contextlib.suppress(RPCError):  # a run that ended on its own
                        await handle.terminate("benchmark over")
        finally:
            await env.shutdown()
    parked = states["awaiting_human"]
    figures: dict[str, Any] = {
        "runs": runs,
        "parked": parked,
        "states": dict(states),
        "warm_up_states": dict(warm_states),
        "rss_mb_before": rounded(before, 1),
        "rss_mb_after": rounded(after, 1),
        "kb_per_parked_run": rounded((after - before) * 1024 / parked, 1) if parked else None,
        "seconds_to_park": rounded(took, 1),
        "worker_warnings": tally.top(),
    }
    report.line(f"  {parked} of {runs} runs parked awaiting a person in {figures['seconds_to_park']} s; resident "
                f"memory {figures['rss_mb_before']} -> {figures['rss_mb_after']} MB: "
                f"{figures['kb_per_parked_run']} KB per parked run")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("parked", __doc__, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
