"""`spec2ship setup`: make a Temporal namespace ready for spec2ship, idempotently.

It is what a cluster install runs after every install and upgrade (the Helm chart's hook Job), and
what an operator can run by hand: it waits for Temporal to answer (the frontend may still be starting
next to a fresh install), registers the search attributes the workflows upsert (a workflow that
upserts an unregistered one fails its task over and over), and creates the factory schedule or
brings an existing one up to the values given. Running it twice changes nothing the second time.

Temporal Cloud does not let clients add search attributes; there they are created with `tcld`, and
this command checks they exist and prints the `tcld` commands when they do not.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Annotated

import typer
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, Schedule, ScheduleAlreadyRunningError, ScheduleUpdate, ScheduleUpdateInput
from temporalio.service import RPCError, RPCStatusCode

from activities.config import TemporalSettings
from contracts.factory import DEFAULT_LABEL, DEFAULT_MAX_IN_FLIGHT, FactoryRunInput
from contracts.names import SEARCH_ATTRIBUTES, STORE_JANITOR_SCHEDULE
from workers.cli_schedule import (
    DEFAULT_SCHEDULE_ID,
    JANITOR_SCHEDULE_ID,
    FactorySettingsError,
    IntervalError,
    factory_request,
    factory_schedule,
    format_interval,
    janitor_schedule,
    parse_interval,
    store_janitor_schedule,
)
from workers.temporal_client import connect

__all__ = ["SetupError", "setup"]

EXIT_FAILED = 1
EXIT_USAGE = 2
REFUSALS = {RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED}


class SetupError(Exception):
    """The namespace could not be made ready; the message says what to do by hand."""


async def _connect_within(settings: TemporalSettings, wait_s: float) -> Client:
    """Connect, retrying for up to `wait_s` seconds: a post-install Job may start before Temporal answers."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await asyncio.wait_for(connect(settings), timeout=10)
        except Exception as error:  # every failure to connect is retried until the deadline
            if time.monotonic() >= deadline:
                raise SetupError(f"no Temporal server answered at {settings.address} within {wait_s:.0f} s "
                                 f"({type(error).__name__}: {error}); check TEMPORAL_ADDRESS and its TLS or API key "
                                 "settings") from None
            await asyncio.sleep(2)


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the missing ones as Keyword; return the names added (empty when all were there)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [name for name in SEARCH_ATTRIBUTES if name not in existing.custom_attributes]
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
            namespace=client.namespace,
        ))
    except RPCError as error:
        if error.status not in REFUSALS:
            raise
        flags = " ".join(f"--search-attribute '{name}=Keyword'" for name in missing)
        raise SetupError(f"Temporal refused to add search attributes {', '.join(missing)} ({error.message}). On "
                         f"Temporal Cloud create them with: tcld namespace search-attributes add --namespace "
                         f"{client.namespace} {flags}") from None
    return missing


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> str:
    """Create the schedule, or update the existing one to these settings; say which."""
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)
        return "updated"


def _interval(text: str) -> timedelta:
    """An interval option's value, or a usage error in one line."""
    try:
        return parse_interval(text)
    except IntervalError as error:
        typer.echo(f"spec2ship setup: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def setup(
    search_attributes: Annotated[bool, typer.Option(
        "--search-attributes/--no-search-attributes",
        help="Register spec2ship's search attributes (or, where Temporal refuses, check them).")] = True,
    factory_repo: Annotated[list[str] | None, typer.Option(
        "--factory-repo", help="OWNER/REPO the factory schedule watches; repeat, or separate with commas. "
        "None: no factory schedule is touched.")] = None,
    factory_every: Annotated[str, typer.Option("--factory-every", help="Factory interval, e.g. 15m, 1h.")] = "15m",
    factory_label: Annotated[str, typer.Option("--factory-label", help="Open issues with it start runs.")] = (
        DEFAULT_LABEL),
    factory_max_in_flight: Annotated[int, typer.Option(
        "--factory-max-in-flight", help="Open runs allowed per repository.")] = DEFAULT_MAX_IN_FLIGHT,
    factory_id: Annotated[str, typer.Option("--factory-id", help="Schedule id.")] = DEFAULT_SCHEDULE_ID,
    janitor_every: Annotated[str | None, typer.Option(
        "--janitor-every", help="Preview janitor interval, e.g. 15m. None: no janitor schedule is touched.")] = None,
    wait_for_temporal: Annotated[float, typer.Option(
        "--wait-for-temporal", min=0, help="Seconds to keep trying to reach Temporal.")] = 120.0,
    store_janitor: Annotated[bool, typer.Option(
        "--store-janitor/--no-store-janitor",
        help="Keep the schedule that removes blob-store content of finished agent runs.")] = True,
    store_janitor_every: Annotated[str, typer.Option(
        "--store-janitor-every", help="How often the store's janitor runs, e.g. 1h.")] = "1h",
) -> None:
    """Get the Temporal namespace ready: search attributes, the store janitor's schedule, and the factory and
    preview janitor schedules when asked (idempotent)."""
    schedule_args: tuple[FactoryRunInput, timedelta] | None = None
    if factory_repo:
        try:
            schedule_args = (factory_request(factory_repo, factory_label, factory_max_in_flight, None),
                             parse_interval(factory_every))
        except (FactorySettingsError, IntervalError) as error:
            typer.echo(f"spec2ship setup: {error}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
    janitor = _interval(janitor_every) if janitor_every else None
    store_every = _interval(store_janitor_every) if store_janitor else None
    settings = TemporalSettings.from_env()

    async def go() -> list[str]:
        client = await _connect_within(settings, wait_for_temporal)
        done = [f"Temporal at {settings.address}, namespace {client.namespace}"]
        if search_attributes:
            added = await ensure_search_attributes(client)
            done.append(f"search attributes: added {', '.join(added)}" if added else "search attributes: all present")
        if store_every is not None:
            how = await ensure_schedule(client, STORE_JANITOR_SCHEDULE, store_janitor_schedule(store_every))
            done.append(f"store janitor schedule {how}: StoreJanitor every {format_interval(store_every)}")
        if schedule_args is not None:
            request, interval = schedule_args
            how = await ensure_schedule(client, factory_id, factory_schedule(request, interval, factory_id))
            done.append(f"schedule {factory_id} {how}: FactoryRun every {format_interval(interval)} for "
                        f"{', '.join(request.repos)}")
        if janitor is not None:
            how = await ensure_schedule(client, JANITOR_SCHEDULE_ID, janitor_schedule(janitor, JANITOR_SCHEDULE_ID))
            done.append(f"schedule {JANITOR_SCHEDULE_ID} {how}: PreviewJanitor every {format_interval(janitor)}")
        return done

    try:
        for line in asyncio.run(go()):
            typer.echo(line)
    except SetupError as error:
        typer.echo(f"spec2ship setup: {error}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    except RPCError as error:
        typer.echo(f"spec2ship setup: Temporal refused: {error.status.name}: {error.message}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
