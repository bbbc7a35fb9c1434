"""Orchestration: real SpecToShip runs against a bare workflow of the same shape, on one server.

What it answers: how much a run costs beyond the floor Temporal itself sets. A real run is the demo's
first spec (greet by name: coder, reviewer and judge scripted, preview, checks, gate, merge on its own)
on a fresh copy of the sample repository. The bare workflow schedules as many activities and children,
in the same order, as that run's history shows, and its activities return at once. Both run in this
process against the same dev server, one after another (sequential) and many at once (concurrent).

    python -m bench orchestration [--quick|--smoke] [--json]

Figures: `ratio_sequential` and `ratio_concurrent` (real / bare wall time; the floor is 1.0), runs per
minute, and where a run's time goes: by stage (the run's `timeline` query) and the share of the run
spent in workflow tasks (scheduled to completed, from the histories of the run and its children).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from bench import bare, history, system
from bench.common import Report, ratio, rounded, run_benchmark, spread, tally_logs

SIZES = {  # sequential pairs, runs per concurrent batch, concurrent rounds (0: the sequential pair stands in)
    "smoke": (1, 1, 0),
    "quick": (4, 4, 1),
    "full": (12, 8, 2),
}


@dataclass
class Timed:
    workflow_id: str
    seconds: float
    outcome: str


class Bench:
    def __init__(self, client: Client, scratch: Path, queue: str, bare_queue: str) -> None:
        self.client = client
        self.scratch = scratch
        self.queue = queue
        self.bare_queue = bare_queue
        self.shape = bare.BareInput()
        self.shape_figures: dict[str, int] = {}
        self._ids = itertools.count()

    async def learn_shape(self, run: Timed) -> None:
        """The bare workflow copies this real run's activities and children, in order."""
        shape = await history.shape_of(self.client, run.workflow_id)
        self.shape = bare.BareInput(shape.steps)
        self.shape_figures = {"activities": shape.activities, "children": shape.children}

    async def real(self, count: int) -> tuple[float, list[Timed]]:
        """`count` real runs started together, each on its own sample repository (built before timing)."""
        prepared = []
        for _ in range(count):
            n = next(self._ids)
            made = system.sample(self.scratch / f"sample-{n}")
            spec, agents = system.merging_run(made)
            prepared.append((f"bench-run-{n}-{uuid.uuid4().hex[:6]}", spec, agents, made.repo))

        async def one(workflow_id: str, spec: Path, agents: Any, repo: Path) -> Timed:
            started = time.perf_counter()
            handle = await system.start_spec(self.client, self.queue, spec, repo, agents, workflow_id)
            state = await system.outcome(handle)
            return Timed(workflow_id, time.perf_counter() - started, state)

        started = time.perf_counter()
        done = await asyncio.gather(*(one(*args) for args in prepared))
        return time.perf_counter() - started, list(done)

    async def bare(self, count: int) -> tuple[float, list[Timed]]:
        async def one() -> Timed:
            workflow_id = f"bench-bare-{next(self._ids)}-{uuid.uuid4().hex[:6]}"
            started = time.perf_counter()
            await self.client.execute_workflow(bare.Bare.run, self.shape, id=workflow_id, task_queue=self.bare_queue)
            return Timed(workflow_id, time.perf_counter() - started, "completed")

        started = time.perf_counter()
        done = await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - started, list(done)


async def where_time_goes(client: Client, runs: Sequence[Timed]) -> dict[str, Any]:
    """Per stage (the run's own timeline) and workflow-task time (histories), averaged over runs."""
    per_stage: dict[str, list[float]] = defaultdict(list)
    walls, task_ms, unstaged = [], [], []
    for run in runs:
        handle = client.get_workflow_handle(run.workflow_id)
        executions = await history.tree(client, run.workflow_id)
        wall = executions[0].wall_ms
        walls.append(wall)
        task_ms.append(sum(e.workflow_task_ms() for e in executions))
        staged = 0.0
        totals: dict[str, float] = defaultdict(float)
        for stage in await system.stages(handle):
            totals[stage.name] += stage.ms
            staged += stage.ms
        for name, ms in totals.items():
            per_stage[name].append(ms)
        unstaged.append(max(wall - staged, 0.0))
    count = max(len(runs), 1)
    mean_wall = sum(walls) / count
    stages = {name: {"ms": rounded(sum(values) / count, 1), "share": ratio(sum(values) / count, mean_wall)}
              for name, values in per_stage.items()}
    stages["(between stages)"] = {"ms": rounded(sum(unstaged) / count, 1),
                                  "share": ratio(sum(unstaged) / count, mean_wall)}
    return {"run_ms": rounded(mean_wall, 1), "stages": stages,
            "workflow_task_share": ratio(sum(task_ms), sum(walls))}


async def outside_activities_ms(client: Client, runs: Sequence[Timed]) -> list[float]:
    """Each run's wall time (its history's) less the time its activities and its children's ran."""
    found = []
    for run in runs:
        executions = await history.tree(client, run.workflow_id)
        found.append(executions[0].wall_ms - sum(e.activity_ms() for e in executions))
    return found


async def measure(size: str, report: Report) -> dict[str, Any]:
    sequential, batch, rounds = SIZES[size]
    tally = tally_logs()
    with tempfile.TemporaryDirectory(prefix="spec2ship-bench-") as folder:
        scratch = Path(folder)
        env = await system.start_server()
        try:
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            bare_queue = f"{queue}-bare"  # a worker cannot share a queue with one that lacks its workflow types
            bench = Bench(env.client, scratch, queue, bare_queue)
            async with (system.spec2ship_workers(env.client, scratch / "data", queue),
                        Worker(env.client, task_queue=bare_queue, workflows=bare.WORKFLOWS,
                               activities=bare.ACTIVITIES)):
                if size != "smoke":  # warm-up: first-run imports and connections are not a run's cost
                    _, [warm] = await bench.real(1)
                    await bench.learn_shape(warm)
                    await bench.bare(1)
                real_seq: list[Timed] = []
                bare_seq: list[Timed] = []
                for _ in range(sequential):  # interleaved, so drift on a shared machine hits both alike
                    real_seq += (await bench.real(1))[1]
                    if not bench.shape.steps:
                        await bench.learn_shape(real_seq[-1])
                    bare_seq += (await bench.bare(1))[1]
                report.line(f"a real run: {bench.shape_figures['activities']} activities and "
                            f"{bench.shape_figures['children']} children")
                outcomes: Counter[str] = Counter(run.outcome for run in real_seq)
                real_batches = [sum(run.seconds for run in real_seq)] if not rounds else []
                bare_batches = [sum(run.seconds for run in bare_seq)] if not rounds else []
                for _ in range(rounds):
                    seconds, done = await bench.real(batch)
                    real_batches.append(seconds)
                    outcomes.update(run.outcome for run in done)
                    bare_batches.append((await bench.bare(batch))[0])
                breakdown = await where_time_goes(env.client, real_seq)
                real_outside = await outside_activities_ms(env.client, real_seq)
                bare_outside = await outside_activities_ms(env.client, bare_seq)
        finally:
            await env.shutdown()

    runs_at_once = batch if rounds else len(real_seq)
    real_ms = [run.seconds * 1000 for run in real_seq]
    bare_ms = [run.seconds * 1000 for run in bare_seq]
    real_median, bare_median = spread(real_ms)["median"], spread(bare_ms)["median"]
    figures: dict[str, Any] = {
        "ratio_sequential": ratio(real_median, bare_median),
        "ratio_concurrent": ratio(sum(real_batches), sum(bare_batches)),
        # The same pairs with the time activities ran taken out of both: what orchestration alone costs.
        "ratio_sequential_outside_activities": ratio(spread(real_outside)["median"], spread(bare_outside)["median"]),
        "outside_activities_ms": {"real": spread(real_outside), "bare": spread(bare_outside)},
        "runs_per_minute": rounded(60 * runs_at_once * len(real_batches) / sum(real_batches), 1),
        "runs_per_minute_sequential": rounded(60_000 / real_median, 1) if real_median else 0.0,
        "bare_runs_per_minute": rounded(60 * runs_at_once * len(bare_batches) / sum(bare_batches), 1),
        "shape": bench.shape_figures,
        "sequential": {"pairs": sequential, "real_ms": spread(real_ms), "bare_ms": spread(bare_ms)},
        "concurrent": {"runs_at_once": runs_at_once, "rounds": len(real_batches), "sequential_stand_in": not rounds,
                       "real_s": [rounded(s) for s in real_batches], "bare_s": [rounded(s) for s in bare_batches]},
        "where_time_goes": breakdown,
        "outcomes": dict(outcomes),
        "worker_warnings": tally.top(),
    }
    report.line(f"sequential ({sequential} each, median): real {real_median:.0f} ms, bare {bare_median:.0f} ms, "
                f"ratio {figures['ratio_sequential']}")
    report.line(f"outside activities (median): real {figures['outside_activities_ms']['real']['median']:.0f} ms, "
                f"bare {figures['outside_activities_ms']['bare']['median']:.0f} ms, "
                f"ratio {figures['ratio_sequential_outside_activities']}")
    report.line(f"concurrent ({runs_at_once} at once x {len(real_batches)}): real {sum(real_batches):.2f}s, bare "
                f"{sum(bare_batches):.2f}s, ratio {figures['ratio_concurrent']}; {figures['runs_per_minute']} "
                f"runs/min ({figures['runs_per_minute_sequential']} one at a time)")
    report.line(f"workflow-task time: {breakdown['workflow_task_share']:.0%} of a run "
                f"({breakdown['run_ms']:.0f} ms mean); by stage:")
    for name, figure in sorted(breakdown["stages"].items(), key=lambda item: -item[1]["ms"]):
        report.line(f"  {name:<18} {figure['ms']:>8.1f} ms  {figure['share']:>6.1%}")
    report.line(f"outcomes: {dict(outcomes)}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("orchestration", __doc__, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
