"""`spec2ship webhook serve` (the GitHub webhook, uvicorn, JSON logs) and `spec2ship webhook spool` (what waits).

Temporal comes from TEMPORAL_ADDRESS & co. (activities/config.py), the webhook secret from
SPEC2SHIP_WEBHOOK_SECRET or SPEC2SHIP_WEBHOOK_SECRET_FILE, GitHub credentials (for permission checks
and replies) from SPEC2SHIP_GITHUB_*; the factory label from SPEC2SHIP_FACTORY_LABEL; the spool from
SPEC2SHIP_WEBHOOK_SPOOL (default: webhook/spool.sqlite3 under SPEC2SHIP_DATA_DIR).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from activities.forge.github_auth import GitHubAuthError
from workers.temporal_client import connect
from workers.webhook import drain_process, jsonlog
from workers.webhook.app import create_app
from workers.webhook.settings import WebhookSettings, settings_problem, spool_path_from_env
from workers.webhook.spool import Row, SpoolError, SpoolReader, Stats

__all__ = ["webhook_app"]

EXIT_USAGE = 2
EXIT_NO_SPOOL = 1


class DrainChoice(StrEnum):
    process = "process"
    inline = "inline"
    none = "none"

webhook_app = typer.Typer(
    name="webhook",
    help="Serve the GitHub webhook: labeled issues start runs, /spec2ship comments steer them.",
    no_args_is_help=True,
    add_completion=False,
)


@webhook_app.callback()
def webhook() -> None:
    """Serve the GitHub webhook, and look into its spool."""


@webhook_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a pod).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    shutdown_grace: Annotated[int, typer.Option(
        "--shutdown-grace", min=0, help="Seconds requests in flight get to finish after SIGTERM.")] = 20,
    drain: Annotated[DrainChoice, typer.Option(
        help="process: a child process carries deliveries out (default); inline: on the server's own event loop; "
             "none: a `spec2ship webhook drain` runs beside it.")] = DrainChoice.process,
) -> None:
    """Listen for GitHub deliveries on POST /webhooks/github (health: /healthz, readiness: /readyz)."""
    try:
        settings = WebhookSettings.from_env()
        app = create_app(settings, connect, drain_mode=drain.value)
    except (GitHubAuthError, SpoolError) as error:
        typer.echo(f"spec2ship webhook: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ValidationError as error:
        typer.echo(f"spec2ship webhook: bad setting: {settings_problem(error)}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    log_config = jsonlog.configure()
    # uvicorn handles SIGTERM itself: it stops accepting, lets requests in flight finish, shuts the app down
    # (the drain stops, what it had not done stays in the spool for the next start), then re-raises the signal.
    uvicorn.run(app, host=host, port=port, log_config=log_config, access_log=False,
                timeout_graceful_shutdown=shutdown_grace)


@webhook_app.command("drain")
def drain_command() -> None:
    """Carry out what `serve --drain none` spools (same spool, same environment), until SIGTERM."""
    raise typer.Exit(drain_process.main([]))


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else "-"


def _ago(at: float | None, now: float) -> str:
    return f"{max(0.0, now - at):.0f} s ago" if at is not None else "-"


def _report(stats: Stats, waiting: list[Row], now: float) -> str:
    age = stats.oldest_pending_age_s(now)
    lines = [f"spool {stats.path}"]
    if stats.pending:
        lines.append(f"waiting: {stats.pending} deliveries, the oldest for {age:.0f} s "
                     f"(received {_when(stats.oldest_pending_at)})")
    else:
        lines.append("waiting: none")
    lines.append(f"finished and remembered (for redeliveries): {stats.done}")
    if stats.last_error is not None:
        lines.append(f"last error: {_ago(stats.last_error_at, now)}, delivery {stats.last_error_key}: "
                     f"{jsonlog.clip(stats.last_error, 500)}")
    else:
        lines.append("last error: none")
    for row in waiting:
        retry = "now" if row.next_at <= now else f"in {row.next_at - now:.0f} s"
        error = f": {jsonlog.clip(row.last_error, 160)}" if row.last_error else ""
        lines.append(f"  {row.key}  {row.event}  {row.attempts} attempt(s), next {retry}{error}")
    return "\n".join(lines)


@webhook_app.command("spool")
def spool(
    path: Annotated[Path | None, typer.Option(
        help="The spool file (default: SPEC2SHIP_WEBHOOK_SPOOL, else webhook/spool.sqlite3 under the data folder)."
    )] = None,
    waiting: Annotated[int, typer.Option(min=0, help="List this many of the oldest waiting deliveries.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """What the webhook's spool holds: deliveries waiting to be carried out, the oldest, the last error.

    Reads the file beside a running webhook (in a pod: `kubectl exec`); it changes nothing."""
    where = path or spool_path_from_env()
    try:
        with SpoolReader(where) as reader:
            stats = reader.stats()
            rows = reader.rows(pending_only=True, limit=waiting) if waiting else []
    except SpoolError as error:
        typer.echo(f"spec2ship webhook spool: {error} (has the webhook run with this spool?)", err=True)
        raise typer.Exit(EXIT_NO_SPOOL) from None
    now = time.time()
    if as_json:
        report = {**stats.model_dump(), "oldest_pending_s": stats.oldest_pending_age_s(now),
                  "waiting": [row.model_dump(mode="json") for row in rows]}
        typer.echo(json.dumps(report))
        return
    typer.echo(_report(stats, rows, now))
