"""The HTTP server GitHub delivers to: `POST /webhooks/github`, plus `/healthz` and `/readyz`.

A delivery is answered as soon as it is verified and on disk, never after waiting on Temporal or GitHub:
the drain (`drain.py`) carries it out in the background. Order of checks, cheapest and safest first: size
(from Content-Length, then while streaming, so a huge body is refused without being read), signature
(over the raw bytes, before any parsing), the event and delivery headers, the body (JSON, then what the
handled event needs, `triage.py`), then the spool.

Answers: 401 unsigned or wrongly signed, 413 over the size cap, 400 for a malformed header or body, 200
for `ping`, 202 for everything else: `queued` (spooled; the drain acts), `refused` (spooled: a reply
will say why), `ignored` (not for spec2ship) or `duplicate` (this delivery id is already spooled). 503
only when the spool itself cannot be written (the disk), so GitHub shows the failure and it can be
redelivered. No input, however malformed, gets a 5xx or a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from activities.forge.registry import close_forges
from contracts.github import DeliveryId, EventName
from workers.webhook import signature
from workers.webhook.drain import Drain
from workers.webhook.drain_process import DrainSupervisor
from workers.webhook.execute import Executor
from workers.webhook.forge import ForgeFactory, github_forge
from workers.webhook.jsonlog import clip
from workers.webhook.runs import TemporalConnection, TemporalFactory
from workers.webhook.settings import WebhookSettings
from workers.webhook.spool import BOTH, Entry, Spool, SpoolError
from workers.webhook.triage import BadDelivery, Triage

log = logging.getLogger("spec2ship.webhook")

_EVENT: TypeAdapter[str] = TypeAdapter(EventName)
_DELIVERY: TypeAdapter[str] = TypeAdapter(DeliveryId)


class _TooLarge(Exception):
    pass


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


def _valid(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _answer(status: int, state: str, reason: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"status": state, "reason": reason, **fields}, status_code=status)


DrainMode = Literal["inline", "process", "none"]


def create_app(
    settings: WebhookSettings,
    temporal_client_factory: TemporalFactory,
    github_factory: ForgeFactory = github_forge,
    *,
    drain_mode: DrainMode = "inline",
) -> FastAPI:
    """The webhook app, with its spool open (raises `spool.SpoolBusy` when another process holds it).

    `temporal_client_factory` returns a Temporal `Client` (or any `runs.Runs`, in tests); `github_factory`
    gives the forge for a delivery's repository (the real GitHub forge by default). `drain_mode`: `inline`
    runs the drain on this event loop (tests, small installs); `process` runs it in a child process the
    lifespan supervises (what `spec2ship webhook serve` does); `none` leaves it to a `spec2ship webhook drain`
    beside this one. `app.state.spool` and `app.state.drain` (inline only) are there for tests; the
    lifespan starts the drain and, on shutdown, stops it and closes the spool (without a lifespan, the first
    delivery starts an inline drain).
    """
    spool = Spool.open(settings.spool_path, roles=BOTH if drain_mode == "inline" else ("ingress",))
    drain: Drain | None = None
    if drain_mode == "inline":
        connection = TemporalConnection(temporal_client_factory, timedelta(seconds=settings.temporal_timeout_s))
        execute = Executor(connection.runs, github_factory, settings.task_queue, settings.github_timeout_s)
        drain = Drain(spool, execute, concurrency=settings.drain_concurrency, keep_s=settings.keep_s)
    supervisor = DrainSupervisor(settings.drain_grace_s) if drain_mode == "process" else None
    triage = Triage(settings.factory_label)
    secret = settings.secret.get_secret_value().encode()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What an earlier process left in the spool is drained without waiting for a delivery.
        if drain is not None:
            drain.start()
        if supervisor is not None:
            supervisor.start()
        try:
            yield
        finally:
            if drain is not None:
                await drain.stop(settings.drain_grace_s)
            if supervisor is not None:
                await supervisor.stop()
            spool.close()
            if github_factory is github_forge:
                close_forges()  # the process's shared GitHub connections (activities.forge.registry)

    app = FastAPI(title="spec2ship webhook", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.spool = spool
    app.state.drain = drain

    async def github_delivery(request: Request) -> Response:
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        fields: dict[str, Any] = {"delivery": clip(delivery), "event": clip(event)}
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
        if not _valid(_EVENT, event):
            log.warning("delivery refused: missing or malformed X-GitHub-Event", extra=fields)
            return _answer(400, "refused", "missing or malformed X-GitHub-Event header")
        if not _valid(_DELIVERY, delivery):
            log.warning("delivery refused: missing or malformed X-GitHub-Delivery", extra=fields)
            return _answer(400, "refused", "missing or malformed X-GitHub-Delivery header")
        try:
            triaged = triage(event, body)
        except BadDelivery as error:
            log.warning("delivery refused: %s", error, extra=fields)
            return _answer(400, "refused", str(error))
        fields.update(action=clip(triaged.action) if triaged.action else None, repo=triaged.repo)
        if triaged.status == "pong":
            log.info("ping", extra=fields)
            return _answer(200, "pong", triaged.reason)
        if triaged.job is None:
            log.info("delivery ignored: %s", triaged.reason, extra={**fields, "disposition": "ignored"})
            return _answer(202, triaged.status, triaged.reason)
        fields["workflow_id"] = triaged.workflow_id
        try:
            spooled = await spool.append(Entry(key=delivery, event=event, job=triaged.job))
        except SpoolError as error:
            log.error("delivery not recorded: %s", error, extra=fields)
            return _answer(503, "unavailable", "the delivery could not be recorded; redeliver it later")
        if drain is not None:
            drain.start()
            drain.wake()
        ids = {"workflow_id": triaged.workflow_id} if triaged.workflow_id else {}
        if not spooled:
            log.info("delivery already spooled", extra={**fields, "disposition": "duplicate"})
            return _answer(202, "duplicate", "this delivery was already received", **ids)
        log.info("delivery %s: %s", triaged.status, triaged.reason, extra={**fields, "disposition": triaged.status})
        return _answer(202, triaged.status, triaged.reason, **ids)

    # A plain Starlette route: FastAPI's parameter resolution costs a delivery more than its signature check.
    app.router.add_route("/webhooks/github", github_delivery, methods=["POST"])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        """Ready while deliveries can be spooled; Temporal being away is reported, not a reason to refuse
        them (that is what the spool is for)."""
        try:
            stats = await spool.stats()
        except SpoolError as error:
            return _answer(503, "unavailable", str(error))
        if spool.last_write_error is not None:
            return _answer(503, "unavailable", f"the spool cannot be written: {spool.last_write_error}")
        age = stats.oldest_pending_age_s()
        figures: dict[str, Any] = {"mode": drain_mode}
        if drain is not None:
            drain.start()
            figures |= {"in_progress": drain.in_progress, "paused_for_s": round(drain.paused_for_s, 1),
                        "temporal_error": drain.temporal_error}
        if supervisor is not None:
            figures |= {"process": "running" if supervisor.running else "restarting", "restarts": supervisor.restarts}
        return _answer(200, "ok", "deliveries are spooled",
                       spool={"pending": stats.pending, "oldest_pending_s": round(age, 1) if age is not None else None,
                              "last_error": stats.last_error},
                       drain=figures)

    return app
