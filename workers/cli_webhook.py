"""`spec2ship webhook serve`: run the GitHub webhook server (uvicorn, JSON logs).

Temporal comes from TEMPORAL_ADDRESS & co. (activities/config.py), the webhook secret from
SPEC2SHIP_WEBHOOK_SECRET or SPEC2SHIP_WEBHOOK_SECRET_FILE, GitHub credentials (for permission checks
and replies) from SPEC2SHIP_GITHUB_*; the factory label from SPEC2SHIP_FACTORY_LABEL.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from activities.forge.github_auth import GitHubAuthError
from workers.temporal_client import connect
from workers.webhook import jsonlog
from workers.webhook.app import create_app
from workers.webhook.settings import WebhookSettings

__all__ = ["webhook_app"]

EXIT_USAGE = 2

webhook_app = typer.Typer(
    name="webhook",
    help="Serve the GitHub webhook: labeled issues start runs, /spec2ship comments steer them.",
    no_args_is_help=True,
    add_completion=False,
)


@webhook_app.callback()
def webhook() -> None:
    """Serve the GitHub webhook (a group, so `serve` stays a subcommand even while it is the only one)."""


@webhook_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a pod).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    shutdown_grace: Annotated[int, typer.Option(
        "--shutdown-grace", min=0, help="Seconds requests in flight get to finish after SIGTERM.")] = 20,
) -> None:
    """Listen for GitHub deliveries on POST /webhooks/github (health: /healthz, readiness: /readyz)."""
    try:
        settings = WebhookSettings.from_env()
    except GitHubAuthError as error:
        typer.echo(f"spec2ship webhook: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    log_config = jsonlog.configure()
    app = create_app(settings, connect)
    # uvicorn handles SIGTERM itself: it stops accepting, lets requests in flight finish, shuts the app down,
    # then re-raises the signal (the exit status says SIGTERM ended it, as Kubernetes expects).
    uvicorn.run(app, host=host, port=port, log_config=log_config, access_log=False,
                timeout_graceful_shutdown=shutdown_grace)
