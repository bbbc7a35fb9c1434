"""`spec2ship demo`: sample specs through the real pipeline on the embedded stack.

Outcomes shown: a change that merges on its own (L5), one that escalates and is approved through the
same update a person's `spec2ship approve` sends (L3), one that fails a criterion and is rejected,
one the trust gate escalates with its reasons (L4, no track record yet), and one that admission
refuses because the team's budget cannot carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.config import task_queue
from activities.ledger.activities import query_trust
from contracts.agents import AgentChoice
from contracts.budget import BudgetConfig, BudgetPeriod
from contracts.names import APPROVE
from contracts.runs import HumanAction, RunState
from workers.cli_budget import configure_budget
from workers.runs import RunSummary, start_run, steer, ui_url, wait_for_decision
from workers.sample.repo import build_sample
from workers.stack import port_in_use, temporal_server
from workers.worker import build_workers, run_workers


class DemoError(Exception):
    """The demo could not run; the message says why."""


class DemoRun(BaseModel):
    name: str
    expected: str
    summary: RunSummary
    seconds: float
    note: str = ""


class DemoResult(BaseModel):
    runs: list[DemoRun]
    trust_explanation: list[str] = Field(default_factory=list)
    wall_seconds: float
    repo: str


async def _one(client: Client, paths: dict[str, Path], name: str, spec: str, agents: AgentChoice, tag: str,
               expected: str, approve_as: str | None = None) -> DemoRun:
    started = time.monotonic()
    handle, _spec = await start_run(client, paths[spec], paths["repo"], agents, task_queue=task_queue(),
                                     workflow_id=f"spec2ship/greeter/{Path(spec).stem}-{tag}", requested_by="demo")
    status = await wait_for_decision(handle, timeout=300)
    note = ""
    if approve_as and status.state is RunState.awaiting_human:
        await steer(client, handle.id, APPROVE, HumanAction(actor=approve_as, reason="evidence report reviewed"))
        note = f"escalated ({'; '.join(status.reasons[-1:])}), then approved by {approve_as}"
        status = await handle.result()
    return DemoRun(name=name, expected=expected, summary=RunSummary.of(status),
                   seconds=round(time.monotonic() - started, 2), note=note)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run_demo(state: Path, quiet: bool = False) -> DemoResult:
    started = time.monotonic()
    console = Console(stderr=True, quiet=quiet)
    port, ui_port = 7233, 8233
    if port_in_use("127.0.0.1", port) or port_in_use("127.0.0.1", ui_port):
        port, ui_port = _free_port(), _free_port()
    folder = Path(tempfile.mkdtemp(prefix="spec2ship-demo-"))
    paths = build_sample(folder)
    console.print(f"sample repository: {paths['repo']}")
    tag = uuid.uuid4().hex[:6]
    stop = asyncio.Event()
    async with temporal_server(state, port, ui_port) as (client, _started):
        workers = build_workers(client, data_dir=state)
        worker_task = asyncio.create_task(run_workers(workers, stop))
        try:
            await configure_budget(client, "research", BudgetConfig(tokens=200_000, period=BudgetPeriod.month))
            scripted = {name: f"scripted:{paths[name]}" for name in paths if name.endswith(".yaml")}
            runs = [
                await _one(client, paths, "greet by name", "greet-by-name.md", AgentChoice(
                    coder=scripted["coder-greet.yaml"], reviewer=scripted["reviewer-approve.yaml"],
                    judge=scripted["judge-fallback.yaml"]), tag, "merged on its own (L5)"),
                await _one(client, paths, "document /hello", "document-hello.md", AgentChoice(
                    coder=scripted["coder-docs.yaml"]), tag, "escalated (L3), approved by a person", "alice"),
                await _one(client, paths, "shout (patch)", "shout.md", AgentChoice(
                    coder=f"patch:{paths['shout.diff']}"), tag, "rejected: a criterion fails"),
                await _one(client, paths, "API version", "api-version.md", AgentChoice(
                    coder=scripted["coder-version.yaml"], reviewer=scripted["reviewer-approve.yaml"]), tag,
                    "escalated by the trust gate (L4, no track record)", "alice"),
                await _one(client, paths, "rewrite in Rust", "rewrite-in-rust.md", AgentChoice(
                    coder=scripted["coder-greet.yaml"]), tag, "refused: team budget too small"),
            ]
            trust = await query_trust(client, "greeter-api")
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await worker_task
    return DemoResult(runs=runs, trust_explanation=trust.explanation, wall_seconds=round(time.monotonic() - started, 2),
                      repo=str(paths["repo"]))


def print_demo(result: DemoResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.model_dump(mode="json")))
        return
    console = Console()
    table = Table("spec", "expected", "state", "decision", "reasons", "tokens", "s", title="spec2ship demo")
    for run in result.runs:
        s = run.summary
        table.add_row(run.name, run.expected, s.state.value, s.decision or "-", "\n".join(s.reasons[-3:]),
                      f"{s.tokens:,}", f"{run.seconds:.1f}")
    console.print(table)
    for run in result.runs:
        console.print(f"{run.name}: {ui_url(run.summary.workflow_id)}", highlight=False)
    console.print("\ntrust of greeter-api (why the L4 run escalated):")
    for line in result.trust_explanation:
        console.print(f"  {line}", highlight=False)
    console.print(f"\nwall time {result.wall_seconds:.1f}s; sample repository {result.repo}")
    console.print("next: `spec2ship trust greeter-api`, `spec2ship dora greeter`, `spec2ship costs --by service`")
