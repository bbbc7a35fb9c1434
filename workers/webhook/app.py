"""The HTTP server GitHub delivers to: `POST /webhooks/github`, plus `/healthz` and `/readyz`.

Order of checks, cheapest and safest first: size (from Content-Length, then while streaming, so a
huge body is refused without being read), signature (over the raw bytes, before any parsing), the
delivery-id LRU (only signed ids enter it, so nobody can poison it), JSON, then the handler.

Answers: 401 unsigned or wrongly signed, 413 over the size cap, 400 for a body that is not a JSON
object or a handled event missing fields it needs, 200 for `ping`, 202 for everything else (acted,
refused with a reply, or ignored; the JSON body says which), 503 when Temporal cannot be reached
(GitHub shows the failure, and the delivery can be redelivered). Bad input never gets a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from temporalio.client import Client

from activities.forge.base import ForgeError
from activities.forge.registry import close_forges
from workers.webhook import signature
from workers.webhook.dedup import DeliveryLog
from workers.webhook.forge import ForgeFactory, github_forge
from workers.webhook.handlers import Handlers, Outcome, Reply
from workers.webhook.runs import Runs, TemporalRuns, TemporalUnavailable
from workers.webhook.settings import WebhookSettings

log = logging.getLogger("spec2ship.webhook")

TemporalFactory = Callable[[], Awaitable[Client | Runs]]


class _TooLarge(Exception):
    pass


class _TemporalConnection:
    """Connects on first use and keeps the connection; a failed connect is retried on the next delivery."""

    def __init__(self, factory: TemporalFactory, rpc_timeout: timedelta) -> None:
        self._factory = factory
        self._timeout = rpc_timeout
        self._runs: Runs | None = None
        self._lock = asyncio.Lock()

    async def runs(self) -> Runs:
        if self._runs is not None:
            return self._runs
        async with self._lock:
            if self._runs is None:
                try:
                    made = await asyncio.wait_for(self._factory(), timeout=self._timeout.total_seconds())
                except (OSError, RuntimeError, TimeoutError) as error:
                    # temporalio raises RuntimeError for a failed connect.
                    raise TemporalUnavailable(f"cannot connect to Temporal: {error}") from None
                self._runs = TemporalRuns(made, self._timeout) if isinstance(made, Client) else made
            return self._runs


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, or `_TooLarge` as soon as it is known to exceed `limit` (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _answer(status: int, state: str, reason: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"status": state, "reason": reason, **fields}, status_code=status)


def create_app(
    settings: WebhookSettings,
    temporal_client_factory: TemporalFactory,
    github_factory: ForgeFactory = github_forge,
) -> FastAPI:
    """The webhook app. `temporal_client_factory` returns a Temporal `Client` (or any `Runs`, in tests);
    `github_factory` gives the forge for a delivery's repository (the real GitHub forge by default)."""
    connection = _TemporalConnection(temporal_client_factory, timedelta(seconds=settings.temporal_timeout_s))
    handlers = Handlers(settings, connection.runs, github_factory)
    deliveries = DeliveryLog(settings.delivery_log_size)
    secret = settings.secret.get_secret_value().encode()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if github_factory is github_forge:
            close_forges()  # the process's shared GitHub connections (activities.forge.registry)

    app = FastAPI(title="spec2ship webhook", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    def send_reply(reply: Reply) -> None:
        """Runs after GitHub has its answer; a failed courtesy reply is logged, never raised."""
        try:
            github_factory(reply.repo).comment(None, reply.issue_number, reply.body)
        except ForgeError as error:
            log.warning(
                "reply not posted: %s",
                error,
                extra={"repo": reply.repo.location, "issue": reply.issue_number},
            )

    @app.post("/webhooks/github")
    async def github_delivery(request: Request, background: BackgroundTasks) -> Response:
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        fields: dict[str, Any] = {"delivery": delivery, "event": event}
        try:
            body = await _read_capped(request, settings.max_body_bytes)
        except _TooLarge:
            log.warning("delivery refused: body over %d bytes", settings.max_body_bytes, extra=fields)
            return _answer(413, "refused", f"body larger than {settings.max_body_bytes} bytes")
        except ClientDisconnect:
            return _answer(400, "refused", "client disconnected before the body was complete")
        if not signature.verify(secret, body, request.headers.get("x-hub-signature-256")):
            log.warning("delivery refused: missing or wrong X-Hub-Signature-256", extra=fields)
            return _answer(401, "refused", "missing or wrong X-Hub-Signature-256; check the webhook secret")
        if not event:
            return _answer(400, "refused", "missing X-GitHub-Event header")
        if delivery and deliveries.seen(delivery):
            log.info("delivery already handled", extra=fields)
            return _answer(202, "duplicate", "this delivery was already handled")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning("delivery refused: not JSON (%s)", error, extra=fields)
            return _answer(400, "refused", "body is not JSON; set the webhook's content type to application/json")
        if not isinstance(payload, dict):
            return _answer(400, "refused", "body is not a JSON object")
        fields["action"] = payload.get("action") if isinstance(payload.get("action"), str) else None
        repository = payload.get("repository")
        fields["repo"] = repository.get("full_name") if isinstance(repository, dict) else None
        if event == "ping":
            deliveries.remember(delivery)
            log.info("ping", extra=fields)
            return _answer(200, "pong", "spec2ship is listening")
        try:
            outcome: Outcome = await handlers.handle(event, delivery, payload)
        except ValidationError as error:
            log.warning("delivery refused: payload misses %d field(s)", error.error_count(), extra=fields)
            where = ", ".join(".".join(map(str, item["loc"])) for item in error.errors()[:5])
            return _answer(400, "refused", f"the {event} payload lacks or mistypes: {where}")
        except TemporalUnavailable as error:
            log.error("delivery not handled: %s", error, extra=fields)
            return _answer(503, "unavailable", "Temporal is unreachable; redeliver this delivery later")
        if delivery:
            deliveries.remember(delivery)
        for reply in outcome.replies:
            background.add_task(send_reply, reply)
        log.info(
            "delivery %s: %s",
            outcome.disposition.value,
            outcome.reason,
            extra={**fields, "disposition": outcome.disposition.value, "workflow_id": outcome.workflow_id},
        )
        ids = {key: value for key, value in (("workflow_id", outcome.workflow_id), ("run_id", outcome.run_id)) if value}
        return _answer(202, outcome.disposition.value, outcome.reason, **ids)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            runs = await connection.runs()
            ready = await runs.healthy()
        except TemporalUnavailable as error:
            return _answer(503, "unavailable", str(error))
        if not ready:
            return _answer(503, "unavailable", "Temporal answered its health check with not serving")
        return _answer(200, "ok", "Temporal is reachable")

    return app
