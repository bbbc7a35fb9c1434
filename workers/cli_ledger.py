"""Ledger commands of the CLI: `trust`, `dora`, and the later-outcome reports `incident`, `revert`, `restored`.

Plain typer command functions; `workers/cli.py` mounts them on the main app. Humans get rich
tables, scripts get one JSON object with `--json`. A service without a ledger is an error (exit 1)
with a message that says what to check, so a typo never silently creates a new ledger.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities import config
from activities.config import TemporalSettings
from activities.ledger.activities import LedgerNotFoundError, existing_ledger, query_trust, signal_ledger
from contracts.ledger import DoraKeys, DoraQuery, DoraReport, LaterOutcome, LaterSignal, TrustReport
from contracts.names import DORA, RECORD_LATER
from rules.trust import TrustParams
from workers.temporal_client import connect

T = TypeVar("T")

ServiceArg = Annotated[str, typer.Argument(help="The service, as named in the spec.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
ShaOpt = Annotated[str, typer.Option("--sha", help="The merge commit the outcome is attributed to.")]
NoteOpt = Annotated[str, typer.Option("--note", help="What happened, for the record.")]
BarOpt = Annotated[
    float | None, typer.Option("--bar", min=0.0, max=1.0, help="Explain against this bar (the policy's trust_bar).")
]
SinceOpt = Annotated[
    datetime | None,
    typer.Option("--since", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="Window start (UTC); default 30 days ago."),
]


def _run(action: Callable[[Client], Awaitable[T]]) -> T:
    """Connect, run the action, and turn the expected failures into a message and exit code 1."""
    settings = TemporalSettings.from_env()
    errors = Console(stderr=True, soft_wrap=True)

    async def main() -> T:
        try:
            client = await connect(settings)
        except RuntimeError as error:
            errors.print(
                f"cannot reach Temporal at {settings.address}: {error}. "
                "Start it with `spec2ship up`, or point TEMPORAL_ADDRESS at your server."
            )
            raise typer.Exit(code=1) from error
        return await action(client)

    try:
        return asyncio.run(main())
    except LedgerNotFoundError as error:
        errors.print(str(error))
        raise typer.Exit(code=1) from error


def _print_json(model: BaseModel) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json")))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def trust(service: ServiceArg, json_out: JsonOpt = False, bar: BarOpt = None) -> None:
    """Show a service's trust: the number the gate compares with the bar, and why."""

    async def action(client: Client) -> TrustReport:
        await existing_ledger(client, service)
        return await query_trust(client, service, bar)

    report = _run(action)
    if json_out:
        _print_json(report)
        return
    table = Table(title=f"trust of {service}")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_row("trust", f"{report.trust:.3f}")
    table.add_row("bar", f"{report.bar:.2f}")
    table.add_row("point estimate", f"{report.point_estimate:.3f}")
    table.add_row("n_eff", f"{report.n_eff:.2f}")
    table.add_row("runs counted", str(report.runs))
    table.add_row("weighted successes", f"{report.successes:.2f}")
    table.add_row(
        "clean merges to clear the bar", "-" if report.merges_to_clear is None else str(report.merges_to_clear)
    )
    if report.capped_until is not None:
        table.add_row("held at 0 until", f"{report.capped_until:%Y-%m-%d %H:%M} UTC")
    console = Console()
    console.print(table)
    for line in report.explanation:
        console.print(f"- {line}", highlight=False)


def dora(service: ServiceArg, since: SinceOpt = None, json_out: JsonOpt = False) -> None:
    """Show DORA's four keys for a service, for agent-made, human-made and all changes."""
    until = datetime.now(UTC)
    start = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since

    async def action(client: Client) -> DoraReport:
        handle = await existing_ledger(client, service)
        return await handle.query(DORA, DoraQuery(since=start, until=until), result_type=DoraReport)

    report = _run(action)
    if json_out:
        _print_json(report)
        return
    table = Table(title=f"DORA four keys of {service}, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    table.add_column("key", no_wrap=True)
    columns: list[tuple[str, DoraKeys]] = [
        ("all", report.all),
        ("agent-made", report.agent),
        ("human-made", report.human),
    ]
    for name, _ in columns:
        table.add_column(name, justify="right")
    rows: list[tuple[str, Callable[[DoraKeys], str]]] = [
        ("merges", lambda k: str(k.merges)),
        ("deployment frequency", lambda k: f"{k.per_week:.1f}/week ({k.frequency.value})"),
        ("lead time (median)", lambda k: _duration(k.lead_time_median_s)),
        ("change failure rate", lambda k: f"{_rate(k.change_failure_rate)} ({k.failed_changes} failed)"),
        ("time to restore (median)", lambda k: _duration(k.time_to_restore_median_s)),
        ("open incidents", lambda k: str(k.open_incidents)),
    ]
    for label, render in rows:
        table.add_row(label, *(render(keys) for _, keys in columns))
    console = Console()
    console.print(table)
    for note in report.notes:
        console.print(f"- {note}", highlight=False)


def _report_later(service: str, kind: LaterSignal, sha: str, note: str) -> LaterOutcome:
    outcome = LaterOutcome(kind=kind, sha=sha, at=datetime.now(UTC), note=note, reference="cli")

    async def action(client: Client) -> None:
        await existing_ledger(client, service)
        await signal_ledger(client, config.task_queue(), service, RECORD_LATER, outcome)

    _run(action)
    return outcome


def incident(service: ServiceArg, sha: ShaOpt, note: NoteOpt = "") -> None:
    """Report an incident caused by a merge: the service's trust drops to 0 at once."""
    outcome = _report_later(service, LaterSignal.incident, sha, note)
    window: timedelta = TrustParams().incident_window
    typer.echo(
        f"recorded an incident on {sha} for {service}: its trust is held at 0 until "
        f"{outcome.at + window:%Y-%m-%d %H:%M} UTC. Report the fix with `restored --sha {sha}`."
    )


def revert(service: ServiceArg, sha: ShaOpt, note: NoteOpt = "") -> None:
    """Report that a merge was reverted: it counts as a failure and a fresh penalty."""
    _report_later(service, LaterSignal.revert, sha, note)
    typer.echo(f"recorded the revert of {sha} for {service}")


def restored(service: ServiceArg, sha: ShaOpt, note: NoteOpt = "") -> None:
    """Report that service was restored after the incident on a merge (DORA's time to restore)."""
    _report_later(service, LaterSignal.restored, sha, note)
    typer.echo(f"recorded the restore after the incident on {sha} for {service}")
