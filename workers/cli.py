"""The `spec2ship` command: operators' and developers' entry point.

Every command turns bad input into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.config import CodecSettings, TemporalSettings, task_queue
from activities.config import data_dir as default_data_dir
from activities.telemetry.setup import process_telemetry
from contracts.agents import AgentChoice
from contracts.names import APPROVE, OVERRIDE, REJECT, REQUEST_CHANGES
from contracts.runs import HumanAction
from specs.parser import SpecError
from workers.cli_budget import budget_app
from workers.cli_codec import codec_app
from workers.cli_costs import costs
from workers.cli_ledger import dora, incident, restored, revert, trust
from workers.cli_preview import preview_app
from workers.cli_schedule import schedule_app
from workers.cli_setup import setup
from workers.cli_spec import spec_app
from workers.cli_webhook import webhook_app
from workers.codec.keys import CodecConfigError, load_keyring
from workers.gpu_worker import gpu_worker
from workers.health import DEFAULT_SHUTDOWN_GRACE_S, HealthPortOpt, ShutdownGraceOpt
from workers.runs import (
    RunCommandError,
    RunSummary,
    list_runs,
    resolve_agent,
    start_run,
    status_of,
    steer,
    ui_url,
    wait_for_decision,
)
from workers.temporal_client import connect

app = typer.Typer(name="spec2ship", help="Specs in, governed and validated changes out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(spec_app, name="spec")
app.add_typer(budget_app, name="budget")
app.add_typer(webhook_app, name="webhook")
app.add_typer(schedule_app, name="schedule")
app.add_typer(preview_app, name="preview")
app.add_typer(codec_app, name="codec")
for command in (costs, trust, dora, incident, revert, restored, setup):
    app.command()(command)

T = TypeVar("T")
P = ParamSpec("P")


@app.callback()
def _check_codec_keys(ctx: typer.Context) -> None:
    """A bad payload-encryption key stops every command before it starts, in one line: no worker,
    webhook or GPU worker runs half-configured. `codec` commands check the keys themselves, so that
    `codec keygen` still works while the configured ones are broken."""
    if ctx.invoked_subcommand == "codec":
        return
    try:
        load_keyring(CodecSettings.from_env())
    except CodecConfigError as error:
        typer.echo(f"error: {error}", err=True)  # not rich: a log pipeline gets it as one line, unwrapped
        raise typer.Exit(1) from None



def traced(service_name: str, state: Callable[..., Path]) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Telemetry for a long-running command: set up once for the process with its data folder (from the
    command's own arguments), flushed and shut down on exit, whatever the exit."""

    def wrap(command: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with process_telemetry(service_name, state(**kwargs)):
                return command(*args, **kwargs)

        return run

    return wrap


def _state_of(data_dir: Path = Path("."), **_: object) -> Path:
    return (data_dir / ".spec2ship").resolve()


def _env_state(**_: object) -> Path:
    return default_data_dir()


app.command("gpu-worker")(traced("spec2ship-gpu-worker", _env_state)(gpu_worker))
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run_async(work: Awaitable[T]) -> T:
    """Run a coroutine; turn the errors a user can cause into one line."""
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except RunCommandError as error:
        fail(str(error))
    except SpecError as error:
        for problem in error.problems:
            err.print(str(problem), highlight=False)
        raise typer.Exit(1) from None


async def client_or_fail() -> Client:
    settings = TemporalSettings.from_env()
    try:
        return await asyncio.wait_for(connect(settings), timeout=10)
    except Exception as error:
        raise RunCommandError(
            f"no Temporal server answers at {settings.address} ({type(error).__name__}): start one with "
            "`spec2ship up`, or set TEMPORAL_ADDRESS"
        ) from error


def print_status(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    console = Console()
    console.print(f"[bold]{summary.workflow_id}[/bold]  {summary.spec_title}")
    console.print(f"state: [bold]{summary.state.value}[/bold]  stage: {summary.stage}  decision: {summary.decision}")
    for reason in summary.reasons:
        console.print(f"  - {reason}", highlight=False)
    for check in summary.checks:
        console.print(f"  check {check['id']}: {check['status']}")
    if summary.pr:
        console.print(f"PR #{summary.pr.get('number')} {summary.pr.get('url')}")
    console.print(f"tokens: {summary.tokens:,}  UI: {summary.ui_url}")


@app.command()
@traced("spec2ship-cli", _env_state)
def run(
    spec_file: Annotated[Path, typer.Argument(help="The spec (Markdown with YAML front matter).")],
    repo: Annotated[Path, typer.Option("--repo", help="The git repository the change is for.")],
    agent: Annotated[str | None, typer.Option("--agent", help="Coder: scripted:FILE, patch:FILE or a model.")] = None,
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Review agent (optional).")] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Validation agent for judge criteria.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Return once the run has a decision.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a SpecToShip run against a local git repository."""

    async def go() -> RunSummary | str:
        choice = AgentChoice(coder=resolve_agent(agent), reviewer=resolve_agent(reviewer), judge=resolve_agent(judge))
        client = await client_or_fail()
        handle, _ = await start_run(client, spec_file, repo, choice, task_queue=task_queue())
        if not wait:
            return handle.id
        return RunSummary.of(await wait_for_decision(handle))

    result = run_async(go())
    if isinstance(result, str):
        typer.echo(json.dumps({"workflow_id": result, "ui_url": ui_url(result)}) if as_json
                   else f"started {result}\n{ui_url(result)}")
        return
    print_status(result, as_json)


def _steer(update: str, workflow_id: str, reason: str, actor: str,
           decision: Literal["merge", "reject"] | None = None) -> None:
    async def go() -> str:
        client = await client_or_fail()
        return await steer(client, workflow_id, update, HumanAction(actor=actor, reason=reason, decision=decision))

    typer.echo(run_async(go()))


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the run and the ledger).")]
AsOpt = Annotated[str, typer.Option("--as", help="Who decides (recorded).")]


@app.command()
def approve(workflow_id: str, reason: ReasonOpt = "", actor: AsOpt = "cli") -> None:
    """Approve a run that waits for a human: it merges."""
    _steer(APPROVE, workflow_id, reason, actor)


@app.command()
def reject(workflow_id: str, reason: ReasonOpt, actor: AsOpt = "cli") -> None:
    """Reject a run that waits for a human: its PR is closed."""
    _steer(REJECT, workflow_id, reason, actor)


@app.command("request-changes")
def request_changes(workflow_id: str, reason: ReasonOpt, actor: AsOpt = "cli") -> None:
    """Send the change back to the coder with your comment."""
    _steer(REQUEST_CHANGES, workflow_id, reason, actor)


@app.command()
def override(
    workflow_id: str,
    decision: Annotated[str, typer.Option("--decision", help="merge or reject")],
    reason: ReasonOpt,
    actor: AsOpt = "cli",
) -> None:
    """Decide against the gate (merge or reject), with a reason."""
    if decision == "merge":
        _steer(OVERRIDE, workflow_id, reason, actor, "merge")
    elif decision == "reject":
        _steer(OVERRIDE, workflow_id, reason, actor, "reject")
    else:
        fail(f"--decision {decision!r}: use merge or reject", code=2)


@app.command()
def status(workflow_id: str, as_json: JsonOpt = False) -> None:
    """Where a run is: state, stage, decision and reasons, checks, PR, tokens."""

    async def go() -> RunSummary:
        client = await client_or_fail()
        try:
            return RunSummary.of(await status_of(client, workflow_id))
        except Exception as error:
            raise RunCommandError(f"no run {workflow_id!r} ({type(error).__name__}: {error})") from error

    print_status(run_async(go()), as_json)


@app.command("list")
def list_command(as_json: JsonOpt = False, limit: Annotated[int, typer.Option(help="At most this many.")] = 50) -> None:
    """Recent runs, newest first."""

    async def go() -> list[dict[str, object]]:
        return await list_runs(await client_or_fail(), limit)

    rows = run_async(go())
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("workflow id", "title", "status", "stage", "decision", "service")
    for row in rows:
        table.add_row(*(str(row[key]) for key in ("workflow_id", "title", "status", "stage", "decision", "service")))
    Console().print(table)


DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Where state is kept (.spec2ship/ inside it).")]


@app.command()
@traced("spec2ship-up", _state_of)
def up(data_dir: DataDirOpt = Path("."), port: int = 7233, ui_port: int = 8233) -> None:
    """Start the embedded stack: Temporal dev server (with UI), the workers and a GPU-queue worker per
    `hf-local` model of the registry, until Ctrl-C."""
    from workers.stack import StackError, temporal_server
    from workers.worker import build_inference_workers, build_workers, run_workers

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with temporal_server(data_dir.resolve(), port, ui_port) as (client, started):
                where = f"http://localhost:{ui_port}" if started else "the existing server's UI"
                Console().print(f"spec2ship is up: Temporal at {client.service_client.config.target_host}, "
                                f"UI {where}; workers on queue {task_queue()}. Ctrl-C stops.")
                state = (data_dir / ".spec2ship").resolve()
                inference, notes = await build_inference_workers(client, data_dir=state)
                for note in notes:
                    Console().print(note, highlight=False)
                await run_workers([*build_workers(client, data_dir=state), *inference], stop)
        except StackError as error:
            raise RunCommandError(str(error)) from error

    run_async(go())
    Console().print("stopped.")


@app.command()
@traced("spec2ship-worker", _state_of)
def worker(data_dir: DataDirOpt = Path("."), health_port: HealthPortOpt = None,
           shutdown_grace: ShutdownGraceOpt = DEFAULT_SHUTDOWN_GRACE_S) -> None:
    """Run the CPU worker against TEMPORAL_ADDRESS until Ctrl-C / SIGTERM."""
    from workers.health import serving_health
    from workers.worker import build_workers, run_workers

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = await client_or_fail()
        Console().print(f"worker polling {task_queue()} at {client.service_client.config.target_host}")
        workers = build_workers(client, data_dir=(data_dir / ".spec2ship").resolve(),
                                graceful_shutdown=timedelta(seconds=shutdown_grace))
        async with serving_health(health_port, client, workers, stop):
            await run_workers(workers, stop)

    run_async(go())


@app.command()
@traced("spec2ship-demo", _state_of)
def demo(as_json: JsonOpt = False, data_dir: DataDirOpt = Path(".")) -> None:
    """Run sample specs through the real pipeline: merged, escalated-then-approved, rejected, and more."""
    from workers.demo import DemoError, print_demo, run_demo

    async def go() -> object:
        try:
            return await run_demo(data_dir.resolve(), quiet=as_json)
        except DemoError as error:
            raise RunCommandError(str(error)) from error

    print_demo(run_async(go()), as_json)  # type: ignore[arg-type]


def main() -> None:
    app()
