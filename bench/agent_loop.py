"""Agent loop: what one durable step costs, and how the agent run's history grows with its steps.

A coder (scripted) reads a large file in slices larger than the tool output cap, one slice per step,
for 10 and for 40 steps (a step is one model call and the tool call it asks for). Each coder runs as
the AgentRun child of a real SpecToShip run; it changes nothing, so the run ends after it.

    python -m bench agent-loop [--quick|--smoke] [--json]

Figures:
- `ms_per_step_overhead`: the durable step (the AgentRun child's wall time per step, at the largest
  size) minus the same step in-process (the same `call_model` and `run_tool` activity methods called
  in this process with the inputs the durable run recorded). Floor: 0.
- `history_bytes_per_step_growth`: history bytes per step at the largest size divided by bytes per
  step at the smallest. 1.0 is flat: a step costs the same history however long the run already is.
- `history_bytes` (and `history_bytes_<steps>`): the agent run's history, all runs of its
  continue-as-new chain and its children, as the server counts it; `max_payload_bytes`: its largest
  single payload (Temporal refuses payloads over 2 MB and histories over 50 MB).
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import history, system
from bench.common import Report, ratio, rounded, run_benchmark, tally_logs

SIZES = {  # steps of the small and the large agent run, runs per size (the fastest counts)
    "smoke": ((2, 4), 1),
    "quick": ((10, 40), 1),
    "full": ((10, 40), 3),
}


@dataclass
class AgentFigures:
    steps: int
    model_calls: int
    outcome: str
    durable_ms: float
    in_process_ms: float
    history_bytes: int
    run_history_bytes: int
    max_payload_bytes: int
    executions: int

    def as_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "model_calls": self.model_calls, "outcome": self.outcome,
            "durable_ms_per_step": rounded(self.durable_ms / self.steps, 2),
            "in_process_ms_per_step": rounded(self.in_process_ms / self.steps, 2),
            "history_bytes": self.history_bytes, "history_bytes_per_step": rounded(self.history_bytes / self.steps, 1),
            "run_history_bytes": self.run_history_bytes, "max_payload_bytes": self.max_payload_bytes,
            "agent_executions": self.executions,
        }


async def one(client: Client, queue: str, scratch: Path, steps: int) -> AgentFigures:
    folder = scratch / f"reader-{steps}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    made, spec, agents = system.reader_run(folder, steps)
    workflow_id = f"bench-agent-{steps}-{uuid.uuid4().hex[:6]}"
    handle = await system.start_spec(client, queue, spec, made.repo, agents, workflow_id)
    outcome = await system.outcome(handle)
    executions = await history.tree(client, workflow_id)
    agents_runs = [e for e in executions if system.is_agent_run(e.workflow_type)]  # continue-as-new runs too
    if not agents_runs:
        raise system.BenchSetupError(f"run {workflow_id} ended ({outcome}) without an agent run")

    in_process = system.InProcessSteps(client, scratch / "in-process", system.clone(made.repo, folder / "clone"),
                                       worker_data=scratch / "data")
    calls = await in_process.calls([event for run in agents_runs for event in run.events])
    started = time.perf_counter()
    for call in calls:
        await in_process.run(call)
    in_process_ms = (time.perf_counter() - started) * 1000

    return AgentFigures(
        steps=steps,
        model_calls=sum(run.activity_types()["call_model"] for run in agents_runs),
        outcome=outcome,
        durable_ms=sum(run.wall_ms for run in agents_runs),
        in_process_ms=in_process_ms,
        history_bytes=sum(run.size_bytes for run in agents_runs),
        run_history_bytes=sum(run.size_bytes for run in executions),
        max_payload_bytes=max(run.max_payload_bytes() for run in agents_runs),
        executions=len(agents_runs),
    )


async def measure(size: str, report: Report) -> dict[str, Any]:
    (small, large), repeats = SIZES[size]
    tally = tally_logs()
    with tempfile.TemporaryDirectory(prefix="spec2ship-bench-") as folder:
        scratch = Path(folder)
        (scratch / "in-process").mkdir()
        env = await system.start_server()
        try:
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            async with system.spec2ship_workers(env.client, scratch / "data", queue):
                if size != "smoke":  # warm-up: first-call imports are not a step's cost
                    await one(env.client, queue, scratch, 2)
                found: dict[int, AgentFigures] = {}
                for _ in range(repeats):  # the fastest of the repeats counts; history size does not vary
                    for steps in (small, large):
                        figures = await one(env.client, queue, scratch, steps)
                        if steps not in found or figures.durable_ms < found[steps].durable_ms:
                            found[steps] = figures
        finally:
            await env.shutdown()

    low, high = found[small], found[large]
    overhead = (high.durable_ms - high.in_process_ms) / high.steps
    growth = ratio(high.history_bytes / high.steps, low.history_bytes / low.steps)
    result: dict[str, Any] = {
        "ms_per_step_overhead": rounded(overhead, 1),
        "history_bytes_per_step_growth": growth,
        "history_bytes": high.history_bytes,
        f"history_bytes_{large}": high.history_bytes,
        f"history_bytes_{small}": low.history_bytes,
        "max_payload_bytes": high.max_payload_bytes,
        "tool_output_cap_chars": system.TOOL_OUTPUT_CAP,
        "by_steps": {str(f.steps): f.as_json() for f in (low, high)},
        "repeats": repeats,
        "worker_warnings": tally.top(),
    }
    for figures in (low, high):
        report.line(f"{figures.steps:>3} steps ({figures.model_calls} model calls, run {figures.outcome}): durable "
                    f"{figures.durable_ms / figures.steps:7.1f} ms/step, in-process "
                    f"{figures.in_process_ms / figures.steps:6.1f} ms/step; agent history "
                    f"{figures.history_bytes / 1e6:6.2f} MB ({figures.history_bytes / figures.steps / 1e3:7.1f} "
                    f"kB/step), largest payload {figures.max_payload_bytes / 1e3:.1f} kB")
    report.line(f"overhead {overhead:.1f} ms per durable step (at {large} steps); history per step grows "
                f"{growth}x from {small} to {large} steps (flat = 1.0)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("agent-loop", __doc__, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
