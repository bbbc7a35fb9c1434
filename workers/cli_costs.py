"""`spec2ship costs`: model spend per team, service, model or role, from the usage ledger."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from activities.telemetry.usage_log import GroupBy, aggregate, read_usage, usage_path
from workers.cli_options import DataDirOpt, state_folder

_RELATIVE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A date (2025-01-31), a timestamp (2025-01-31T09:00, UTC unless it says otherwise) or an age (7d, 12h, 30m)."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise typer.BadParameter(
            f"{value!r} is not a date: use 2025-01-31, 2025-01-31T09:00, or an age such as 7d, 12h or 30m"
        ) from err
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def costs(
    by: Annotated[GroupBy, typer.Option("--by", help="Group by team, service, model or role.")] = GroupBy.team,
    since: Annotated[str | None, typer.Option("--since", help="Only calls since a date or age (7d).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data: DataDirOpt = None,
) -> None:
    """Tokens and USD spent on model calls, from <data dir>/usage/usage.jsonl."""
    start = parse_since(since) if since is not None else None
    folder = state_folder(data)
    rows = aggregate(read_usage(folder, start), by)
    if json_out:
        typer.echo(json.dumps([row.model_dump() for row in rows], indent=2))
        return
    console = Console()
    if not rows:
        window = f" since {start.isoformat()}" if start else ""
        console.print(f"No model calls recorded{window} in {usage_path(folder)}.")
        return
    table = Table(title=f"Model spend by {by.value}" + (f" since {start:%Y-%m-%d %H:%M} UTC" if start else ""))
    table.add_column(by.value)
    table.add_column("calls", justify="right")
    table.add_column("tokens in", justify="right")
    table.add_column("tokens out", justify="right")
    table.add_column("USD", justify="right")
    for row in rows:
        table.add_row(row.key, str(row.calls), f"{row.input_tokens:,}", f"{row.output_tokens:,}",
                      f"{row.cost_usd:.4f}")
    table.add_section()
    table.add_row("total", str(sum(r.calls for r in rows)), f"{sum(r.input_tokens for r in rows):,}",
                  f"{sum(r.output_tokens for r in rows):,}", f"{sum(r.cost_usd for r in rows):.4f}")
    console.print(table)
