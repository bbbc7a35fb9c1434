"""`spec2ship schedule ...`: scheduled factory runs as Temporal Schedules.

`create factory` makes a Schedule that starts a `FactoryRun` every interval (overlaps skipped: a slow
pass is never joined by the next); `list`, `pause`, `unpause`, `trigger` and `delete` manage it.
Temporal comes from TEMPORAL_ADDRESS & co. (activities/config.py). Exit codes: 0 done, 1 Temporal
refused (no such schedule, already exists, unreachable), 2 usage errors.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.config import TemporalSettings, task_queue
from contracts.factory import DEFAULT_LABEL, DEFAULT_MAX_IN_FLIGHT, FactoryRunInput
from contracts.names import FACTORY_RUN, PREVIEW_JANITOR, STORE_JANITOR, STORE_JANITOR_SCHEDULE
from contracts.store import SweepStoreInput
from workers.temporal_client import connect

__all__ = ["FactorySettingsError", "factory_request", "factory_schedule", "janitor_schedule", "parse_interval",
           "schedule_app"]

EXIT_REFUSED = 1
EXIT_USAGE = 2
DEFAULT_SCHEDULE_ID = "spec2ship-factory"
JANITOR_SCHEDULE_ID = "spec2ship-preview-janitor"

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_INTERVAL = re.compile(r"(?:\d+[dhms])+")

T = TypeVar("T")

schedule_app = typer.Typer(
    name="schedule",
    help="Scheduled factory runs: start runs for labelled issues every so often.",
    no_args_is_help=True,
    add_completion=False,
)
create_app = typer.Typer(help="Create a schedule.", no_args_is_help=True)
schedule_app.add_typer(create_app, name="create")


class IntervalError(ValueError):
    """An `--every` value that is not a positive duration such as 15m, 1h30m or 2d."""


def parse_interval(text: str) -> timedelta:
    """`15m`, `1h30m`, `90s`, `2d` -> timedelta; raises IntervalError with what to write instead."""
    compact = text.strip().lower()
    if not _INTERVAL.fullmatch(compact):
        raise IntervalError(f"--every {text!r} is not a duration: write it like 15m, 1h, 1h30m or 2d")
    seconds = sum(int(amount) * _UNITS[unit] for amount, unit in re.findall(r"(\d+)([dhms])", compact))
    if seconds <= 0:
        raise IntervalError(f"--every {text!r} must be longer than zero: write it like 15m")
    return timedelta(seconds=seconds)


def format_interval(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


class FactorySettingsError(ValueError):
    """Factory settings (repositories, label, runs in flight) that FactoryRunInput refuses."""


def factory_request(repo: list[str], label: str, max_in_flight: int, queue: str | None) -> FactoryRunInput:
    """The FactoryRun input from command-line values; `repo` entries may hold several names, comma-separated."""
    repos = [name.strip() for value in repo for name in value.split(",") if name.strip()]
    try:
        return FactoryRunInput(repos=repos, label=label, max_in_flight=max_in_flight, task_queue=queue)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise FactorySettingsError(f"bad factory settings: {problems} (repos are OWNER/REPO)") from None


def factory_schedule(request: FactoryRunInput, interval: timedelta, schedule_id: str) -> Schedule:
    """A FactoryRun every `interval`, overlaps skipped (also what `spec2ship setup` keeps up to date)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            FACTORY_RUN, request, id=f"{schedule_id}-run", task_queue=request.task_queue or task_queue()
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"factory for {', '.join(request.repos)}, label {request.label!r}"),
    )


def janitor_schedule(interval: timedelta, schedule_id: str, queue: str | None = None) -> Schedule:
    """A PreviewJanitor sweep every `interval`: previews past their TTL are torn down, found by label."""
    return Schedule(
        action=ScheduleActionStartWorkflow(PREVIEW_JANITOR, id=f"{schedule_id}-run", task_queue=queue or task_queue()),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="preview janitor: removes previews past their TTL"),
    )


def store_janitor_schedule(interval: timedelta, queue: str | None = None) -> Schedule:
    """A StoreJanitor pass every `interval`: blobs of agent runs finished longer ago than the workers'
    SPEC2SHIP_STORE_RETENTION are removed."""
    return Schedule(
        action=ScheduleActionStartWorkflow(STORE_JANITOR, SweepStoreInput(), id=f"{STORE_JANITOR_SCHEDULE}-run",
                                           task_queue=queue or task_queue()),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="store janitor: removes blobs of agent runs past SPEC2SHIP_STORE_RETENTION"),
    )


async def create_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        raise _fail(f"schedule {schedule_id} already exists: delete it first, or pick another --id",
                    EXIT_REFUSED) from None


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"spec2ship schedule: {message}", err=True)
    return typer.Exit(code)


def _every(text: str) -> timedelta:
    """The --every option's interval, or a usage error in one line."""
    try:
        return parse_interval(text)
    except IntervalError as error:
        raise _fail(str(error), EXIT_USAGE) from None


def _run(work: Callable[[Client], Awaitable[T]]) -> T:
    """Connect, do the work, and turn Temporal's refusals into one-line errors."""
    settings = TemporalSettings.from_env()

    async def main() -> T:
        try:
            client = await connect(settings)
        except RuntimeError as error:
            raise _fail(f"cannot connect to Temporal at {settings.address}: {error}", EXIT_REFUSED) from None
        return await work(client)

    try:
        return asyncio.run(main())
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise _fail(f"no such schedule ({error.message}); see `spec2ship schedule list`", EXIT_REFUSED) from None
        raise _fail(f"Temporal refused: {error.status.name}: {error.message}", EXIT_REFUSED) from None


@create_app.command("factory")
def create_factory(
    repo: Annotated[list[str], typer.Option("--repo", help="OWNER/REPO; repeat, or separate with commas.")],
    every: Annotated[str, typer.Option("--every", help="Interval, e.g. 15m, 1h, 1h30m, 2d.")],
    label: Annotated[str, typer.Option(help="Open issues with this label are started.")] = DEFAULT_LABEL,
    max_in_flight: Annotated[int, typer.Option(help="Open runs allowed per repository.")] = DEFAULT_MAX_IN_FLIGHT,
    schedule_id: Annotated[str, typer.Option("--id", help="Schedule id.")] = DEFAULT_SCHEDULE_ID,
    queue: Annotated[str | None, typer.Option("--task-queue", help="Task queue (default: the worker's).")] = None,
) -> None:
    """Start a FactoryRun every --every: issues labelled --label in each --repo get runs, a few at a time."""
    interval = _every(every)
    try:
        request = factory_request(repo, label, max_in_flight, queue)
    except FactorySettingsError as error:
        raise _fail(str(error), EXIT_USAGE) from None
    schedule = factory_schedule(request, interval, schedule_id)
    _run(lambda client: create_schedule(client, schedule_id, schedule))
    typer.echo(f"created schedule {schedule_id}: FactoryRun every {format_interval(interval)} for "
               f"{', '.join(request.repos)}")


@create_app.command("janitor")
def create_janitor(
    every: Annotated[str, typer.Option("--every", help="Interval, e.g. 15m, 1h.")] = "15m",
    schedule_id: Annotated[str, typer.Option("--id", help="Schedule id.")] = JANITOR_SCHEDULE_ID,
    queue: Annotated[str | None, typer.Option("--task-queue", help="Task queue (default: the worker's).")] = None,
) -> None:
    """Sweep for previews past their TTL every --every (vCluster previews are found by spec2ship's labels)."""
    interval = _every(every)
    schedule = janitor_schedule(interval, schedule_id, queue)
    _run(lambda client: create_schedule(client, schedule_id, schedule))
    typer.echo(f"created schedule {schedule_id}: PreviewJanitor every {format_interval(interval)}")


def _row(entry: ScheduleListDescription) -> str:
    # Visibility may list a schedule before it has its details: show what is known.
    listed, info = entry.schedule, entry.info
    state = ("paused" if listed.state.paused else "active") if listed else "-"
    intervals = ",".join(f"every {format_interval(i.every)}" for i in listed.spec.intervals) if listed else ""
    upcoming = info.next_action_times[0].isoformat(timespec="seconds") if info and info.next_action_times else "-"
    note = (listed.state.note or "") if listed else ""
    return f"{entry.id}\t{state}\t{intervals or '-'}\tnext {upcoming}\t{note}"


@schedule_app.command("list")
def list_schedules() -> None:
    """One line per schedule: id, state, interval, next run, note."""

    async def rows(client: Client) -> list[str]:
        lines = []
        async for entry in await client.list_schedules():
            lines.append(_row(entry))
        return lines

    found = _run(rows)
    for line in found:
        typer.echo(line)
    if not found:
        typer.echo("no schedules; create one with `spec2ship schedule create factory --repo OWNER/REPO --every 15m`")


@schedule_app.command("pause")
def pause(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    note: Annotated[str | None, typer.Option(help="Why; shown in `list` and the Temporal UI.")] = None,
) -> None:
    """Stop starting factory runs until `unpause`."""
    _run(lambda client: client.get_schedule_handle(schedule_id).pause(note=note or "paused with spec2ship schedule"))
    typer.echo(f"paused {schedule_id}")


@schedule_app.command("unpause")
def unpause(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    note: Annotated[str | None, typer.Option(help="Why; shown in `list` and the Temporal UI.")] = None,
) -> None:
    """Resume a paused schedule."""
    _run(
        lambda client: client.get_schedule_handle(schedule_id).unpause(note=note or "unpaused with spec2ship schedule")
    )
    typer.echo(f"unpaused {schedule_id}")


@schedule_app.command("trigger")
def trigger(schedule_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Start one factory run now (also while paused)."""
    _run(lambda client: client.get_schedule_handle(schedule_id).trigger())
    typer.echo(f"triggered {schedule_id}")


@schedule_app.command("delete")
def delete(schedule_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Remove the schedule; runs it already started go on."""
    _run(lambda client: client.get_schedule_handle(schedule_id).delete())
    typer.echo(f"deleted {schedule_id}")
