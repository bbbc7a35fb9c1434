"""Liveness and readiness over HTTP for the worker processes, and how they drain on SIGTERM.

Kubernetes asks a worker two questions. Liveness: is the process stuck? The answer comes from the
asyncio loop itself (a beat it writes every second), so a blocked loop gets the pod restarted while a
busy thread pool does not. Readiness: should this pod count as serving? A worker takes its work from
Temporal, not from a Service, so "ready" means its workers are polling and Temporal answered its
health check lately; it turns false the moment a stop signal starts the drain, while liveness stays
true, so the pod is not killed before its in-flight activities finish (the workers' graceful
shutdown timeout, which the chart matches with `terminationGracePeriodSeconds`).

The server is the standard library's threaded HTTP server on its own thread: it answers even while
the loop is busy, and it installs no signal handlers of its own (uvicorn would take SIGTERM over).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Protocol

import typer
from temporalio.client import Client

log = logging.getLogger("spec2ship.health")

BEAT_EVERY_S = 1.0
STALL_AFTER_S = 60.0
"""A loop that has not beaten for this long is stuck: liveness fails and Kubernetes restarts the pod."""
CHECK_TEMPORAL_EVERY_S = 10.0
TEMPORAL_CHECK_TIMEOUT_S = 5.0
TEMPORAL_STALE_AFTER_S = 30.0
"""Readiness needs a successful Temporal health check no older than this."""
DEFAULT_SHUTDOWN_GRACE_S = 30.0

# The options every worker command shares (`spec2ship worker`, `spec2ship gpu-worker`).
HealthPortOpt = Annotated[int | None, typer.Option("--health-port", min=0, max=65535,
                                                   help="Serve /healthz and /readyz on this port (off by default).")]
ShutdownGraceOpt = Annotated[float, typer.Option("--shutdown-grace", min=0,
                                                 help="Seconds in-flight activities get to finish after SIGTERM.")]


class Polling(Protocol):
    """What readiness needs of a Temporal worker (temporalio's `Worker` has it)."""

    @property
    def is_running(self) -> bool: ...

    @property
    def task_queue(self) -> str: ...


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str

    def body(self) -> bytes:
        return json.dumps({"status": "ok" if self.ok else "unavailable", "reason": self.reason}).encode()


class HealthState:
    """What the probes read; written by the loop's watcher, read by the HTTP thread (under a lock)."""

    def __init__(self, *, stall_after_s: float = STALL_AFTER_S, temporal_stale_after_s: float = TEMPORAL_STALE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._stall_after_s = stall_after_s
        self._temporal_stale_after_s = temporal_stale_after_s
        self._beat = self._clock()
        self._temporal_ok_at: float | None = None
        self._temporal_problem = "Temporal not checked yet"
        self._not_polling: list[str] = []
        self._started = False
        self._draining = False

    def beat(self) -> None:
        with self._lock:
            self._beat = self._clock()

    def temporal_answered(self) -> None:
        with self._lock:
            self._temporal_ok_at = self._clock()

    def temporal_failed(self, problem: str) -> None:
        with self._lock:
            self._temporal_ok_at, self._temporal_problem = None, problem

    def polling(self, not_polling: list[str]) -> None:
        """Task queues whose worker is not running (empty: all poll)."""
        with self._lock:
            self._started, self._not_polling = True, list(not_polling)

    def drain(self) -> None:
        with self._lock:
            self._draining = True

    def liveness(self) -> Verdict:
        with self._lock:
            stalled_for = self._clock() - self._beat
        if stalled_for > self._stall_after_s:
            return Verdict(False, f"the event loop has not run for {stalled_for:.0f} s")
        return Verdict(True, "the event loop runs")

    def readiness(self) -> Verdict:
        with self._lock:
            now = self._clock()
            if self._draining:
                return Verdict(False, "draining: a stop signal arrived, in-flight work is finishing")
            if not self._started:
                return Verdict(False, "workers not started yet")
            if self._not_polling:
                return Verdict(False, f"not polling task queue(s) {', '.join(self._not_polling)}")
            if self._temporal_ok_at is None:
                return Verdict(False, self._temporal_problem)
            age = now - self._temporal_ok_at
            if age > self._temporal_stale_after_s:
                return Verdict(False, f"no successful Temporal health check for {age:.0f} s")
        return Verdict(True, "polling, and Temporal answers")


class _Handler(BaseHTTPRequestHandler):
    state: HealthState  # set on the subclass made per server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        verdict = {"/healthz": self.state.liveness, "/livez": self.state.liveness,
                   "/readyz": self.state.readiness}.get(path)
        if verdict is None:
            self._answer(404, b'{"status": "not found", "reason": "probes are /healthz and /readyz"}')
            return
        result = verdict()
        self._answer(200 if result.ok else 503, result.body())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None  # probes every few seconds would drown the worker's own log


class HealthServer:
    """`/healthz` (liveness) and `/readyz` (readiness) on `host:port`, served from a daemon thread."""

    def __init__(self, state: HealthState, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"state": state})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="spec2ship-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def watch(state: HealthState, client: Client, workers: Sequence[Polling], stop: asyncio.Event, *,
                check_every_s: float = CHECK_TEMPORAL_EVERY_S) -> None:
    """Beat, note which workers poll, ask Temporal for its health now and then; mark the drain on `stop`."""
    next_check = 0.0
    while True:
        state.beat()
        if stop.is_set():
            state.drain()
        state.polling([worker.task_queue for worker in workers if not worker.is_running])
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + check_every_s
            try:
                healthy = await asyncio.wait_for(client.service_client.check_health(),
                                                 timeout=TEMPORAL_CHECK_TIMEOUT_S)
            except Exception as error:  # any failure means "not ready", never a crash of the probe
                state.temporal_failed(f"Temporal health check failed: {type(error).__name__}: {error}")
            else:
                if healthy:
                    state.temporal_answered()
                else:
                    state.temporal_failed("Temporal answered its health check with not serving")
        if stop.is_set():
            await asyncio.sleep(BEAT_EVERY_S)
        else:  # wake at once on the stop signal, so readiness turns false before the drain begins
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=BEAT_EVERY_S)


@contextlib.asynccontextmanager
async def serving_health(port: int | None, client: Client, workers: Sequence[Polling], stop: asyncio.Event,
                         *, host: str = "0.0.0.0") -> AsyncIterator[HealthServer | None]:
    """Serve the probes for these workers while the block runs; with `port` None, do nothing."""
    if port is None:
        yield None
        return
    state = HealthState()
    server = HealthServer(state, host, port)
    server.start()
    log.info("health probes on %s:%d (/healthz, /readyz)", host, server.port)
    watcher = asyncio.create_task(watch(state, client, workers, stop))
    try:
        yield server
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        server.close()
