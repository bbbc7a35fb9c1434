"""The `spec2ship` command: operators' and developers' entry point.

Every command turns bad input into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from typer.exceptions import TyperException

from activities.config import CodecSettings, ConfigError, TemporalSettings, task_queue
from activities.config import data_dir as default_data_dir
from activities.store import StoreError
from activities.telemetry.setup import process_telemetry
from contracts.agents import AgentChoice
from contracts.names import APPROVE, OVERRIDE, REJECT, REQUEST_CHANGES, STORE_JANITOR_SCHEDULE
from contracts.runs import HumanAction
from specs.parser import SpecError
from workers import temporal_client
from workers.cli_budget import budget_app
from workers.cli_codec import codec_app
from workers.cli_costs import costs
from workers.cli_ledger import dora, incident, restored, revert, trust
from workers.cli_options import DataDirOpt, JsonOpt, state_folder
from workers.cli_preview import preview_app
from workers.cli_schedule import schedule_app
from workers.cli_setup import setup
from workers.cli_spec import spec_app
from workers.cli_webhook import webhook_app
from workers.codec.blobs import worker_store
from workers.codec.keys import CodecConfigError, load_keyring
from workers.gpu_worker import gpu_worker
from workers.health import DEFAULT_SHUTDOWN_GRACE_S, HealthPortOpt, ShutdownGraceOpt
from workers.inputs import InputFileError
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
        fail(str(error))


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


def _state_of(data_dir: Path | None = None, **_: object) -> Path:
    return state_folder(data_dir)


def _env_state(**_: object) -> Path:
    return default_data_dir()


app.command("gpu-worker")(traced("spec2ship-gpu-worker", _env_state)(gpu_worker))
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run_async(work: Awaitable[T]) -> T:
    """Run a coroutine; turn the errors a user can cause into one line."""
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except (RunCommandError, InputFileError) as error:
        fail(str(error))
    except StoreError as error:  # a worker's blob store: unreachable or misconfigured, said in one line
        fail(f"blob store: {error}")
    except SpecError as error:
        for problem in error.problems:
            err.print(str(problem), highlight=False)
        raise typer.Exit(1) from None


async def client_or_fail() -> Client:
    settings = TemporalSettings.from_env()
    try:
        return await asyncio.wait_for(connect(settings), timeout=10)
    except ConfigError:  # our own settings are wrong, not the server's absence
        raise
    except Exception as error:
        raise RunCommandError(
            f"no Temporal server answers at {settings.address} ({type(error).__name__}): start one with "
            "`spec2ship up`, or set TEMPORAL_ADDRESS"
        ) from error


def print_status(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    console = Console(soft_wrap=True)  # ids and links stay whole, so they can be copied and clicked
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
    wait: Annotated[bool, typer.Option("--wait", help="Return once the run has a decision or ended.")] = False,
    as_json: JsonOpt = False,
    actor: Annotated[str | None, typer.Option("--as", help="Who asks for the change (default: your user name); "
                                                          "with four eyes they cannot approve it.")] = None,
) -> None:
    """Start a SpecToShip run against a local git repository."""

    async def go() -> RunSummary | str:
        choice = AgentChoice(coder=resolve_agent(agent), reviewer=resolve_agent(reviewer), judge=resolve_agent(judge))
        client = await client_or_fail()
        handle, _ = await start_run(client, spec_file, repo, choice, task_queue=task_queue(),
                                    requested_by=person(actor, "--as"))
        if not wait:
            return handle.id
        return RunSummary.of(await wait_for_decision(handle))

    result = run_async(go())
    if isinstance(result, str):
        typer.echo(json.dumps({"workflow_id": result, "ui_url": ui_url(result)}) if as_json
                   else f"started {result}\n{ui_url(result)}")
        return
    print_status(result, as_json)


def person(name: str | None, option: str) -> str:
    """Who acts: the name given, else the OS user; never empty (it is recorded, and four eyes compares it)."""
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            fail(f"{option}: cannot tell who you are (no user name in this environment); pass {option} NAME", code=2)
    if not name.strip():
        fail(f"{option}: give a name (it is recorded with the run)", code=2)
    return name.strip()


def _steer(update: str, workflow_id: str, reason: str, actor: str | None,
           decision: Literal["merge", "reject"] | None = None) -> None:
    who = person(actor, "--as")

    async def go() -> str:
        client = await client_or_fail()
        return await steer(client, workflow_id, update, HumanAction(actor=who, reason=reason, decision=decision))

    typer.echo(run_async(go()))


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the run and the ledger).")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Who decides (recorded; default: your user name).")]


@app.command()
def approve(workflow_id: str, reason: ReasonOpt = "", actor: AsOpt = None) -> None:
    """Approve a run that waits for a human: it merges."""
    _steer(APPROVE, workflow_id, reason, actor)


@app.command()
def reject(workflow_id: str, reason: ReasonOpt, actor: AsOpt = None) -> None:
    """Reject a run that waits for a human: its PR is closed."""
    _steer(REJECT, workflow_id, reason, actor)


@app.command("request-changes")
def request_changes(workflow_id: str, reason: ReasonOpt, actor: AsOpt = None) -> None:
    """Send the change back to the coder with your comment."""
    _steer(REQUEST_CHANGES, workflow_id, reason, actor)


@app.command()
def override(
    workflow_id: str,
    decision: Annotated[str, typer.Option("--decision", help="merge or reject")],
    reason: ReasonOpt,
    actor: AsOpt = None,
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
        return RunSummary.of(await status_of(await client_or_fail(), workflow_id))

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
    # Readable at 80 columns: the id folds, the rest stay on one line; state tells merged from rejected.
    table = Table("run", "state", "decision", "service")
    table.columns[0].overflow = "fold"
    for row in rows:
        state = str(row["state"] or row["status"])
        table.add_row(f"{row['workflow_id']}\n[dim]{row['title']}[/dim]", state, str(row["decision"] or "-"),
                      str(row["service"] or "-"))
    Console().print(table)


@app.command()
@traced("spec2ship-up", _state_of)
def up(data_dir: DataDirOpt = None, port: int = 7233, ui_port: int = 8233) -> None:
    """Start the embedded stack: Temporal dev server (with UI), the workers and a GPU-queue worker per
    `hf-local` model of the registry, until Ctrl-C."""
    from workers.cli_schedule import store_janitor_schedule
    from workers.cli_setup import ensure_schedule
    from workers.stack import StackError, temporal_server
    from workers.worker import build_inference_workers, build_workers, run_workers

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            state = state_folder(data_dir)
            async with temporal_server(state, port, ui_port) as (client, started):
                where = f"http://localhost:{ui_port}" if started else "the existing server's UI"
                Console().print(f"spec2ship is up: Temporal at {client.service_client.config.target_host}, "
                                f"UI {where}; workers on queue {task_queue()}; state in {state}. Ctrl-C stops.")
                workers = build_workers(client, data_dir=state)  # checks the blob store first
                await ensure_schedule(client, STORE_JANITOR_SCHEDULE, store_janitor_schedule(timedelta(hours=1)))
                inference, notes = await build_inference_workers(client, data_dir=state)
                for note in notes:
                    Console().print(note, highlight=False)
                await run_workers([*workers, *inference], stop)
        except StackError as error:
            raise RunCommandError(str(error)) from error

    run_async(go())
    Console().print("stopped.")


@app.command()
@traced("spec2ship-worker", _state_of)
def worker(data_dir: DataDirOpt = None, health_port: HealthPortOpt = None,
           shutdown_grace: ShutdownGraceOpt = DEFAULT_SHUTDOWN_GRACE_S,
           metrics_port: Annotated[int | None, typer.Option(
               "--metrics-port", min=1, max=65535,
               help="Serve Prometheus /metrics here (default: $SPEC2SHIP_METRICS_PORT, else none).")] = None) -> None:
    """Run the CPU worker against TEMPORAL_ADDRESS until Ctrl-C / SIGTERM."""
    if metrics_port is not None:
        os.environ[temporal_client.METRICS_PORT_ENV] = str(metrics_port)
    from workers.health import serving_health
    from workers.worker import build_workers, run_workers

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        store = worker_store(state_folder(data_dir))
        store.check()  # before Temporal: a store this worker cannot use is said at once, in one line
        client = await client_or_fail()
        Console().print(f"worker polling {task_queue()} at {client.service_client.config.target_host}")
        workers = build_workers(client, data_dir=state_folder(data_dir), store=store,
                                graceful_shutdown=timedelta(seconds=shutdown_grace))
        async with serving_health(health_port, client, workers, stop):
            await run_workers(workers, stop)

    run_async(go())


@app.command()
@traced("spec2ship-demo", _state_of)
def demo(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Run sample specs through the real pipeline: merged, escalated-then-approved, rejected, and more."""
    from workers.demo import DemoError, print_demo, run_demo

    async def go() -> object:
        try:
            return await run_demo(state_folder(data_dir), quiet=as_json)
        except DemoError as error:
            raise RunCommandError(str(error)) from error

    print_demo(run_async(go()), as_json)  # type: ignore[arg-type]


def main() -> None:
    """Run the command; whatever happens, one line at most for an error, and an exit that cannot abort.

    Temporal's client leaves native threads that can crash CPython's finalization (`PyGILState_Release`,
    temporalio/sdk-python#300): a process that talked to Temporal flushes its output and exits at once.
    """
    code = run_command()
    sys.stdout.flush()
    sys.stderr.flush()
    if temporal_client.connected():
        os._exit(code)
    sys.exit(code)


def run_command(args: list[str] | None = None) -> int:
    """The exit code of one command: 0, 1 for a failure it reports, 2 for usage, 130 for Ctrl-C."""
    try:
        result = app(args=args, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return 130
    except TyperException as usage:  # the command line itself is wrong: click says what, exit 2
        show = getattr(usage, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"[red]error:[/red] {usage}", highlight=False)
        return int(getattr(usage, "exit_code", 2))
    except ConfigError as wrong:  # the environment is wrong: its message names the variable
        err.print(f"[red]error:[/red] {wrong}", highlight=False)
        return 1
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or invalid.title
        err.print(f"[red]error:[/red] {where}: {first['msg']}", highlight=False)
        return 1
    except Exception as error:  # a bug, not bad input: one line, and how to see more
        if os.environ.get("SPEC2SHIP_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {type(error).__name__}: {error} (an internal error: set SPEC2SHIP_DEBUG=1 "
                  "to see where, and please report it)", highlight=False)
        return 1
    return result if isinstance(result, int) else 0
