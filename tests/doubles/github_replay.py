"""Replay calls GitHub really answered (`@octokit/fixtures`) to a client, over real HTTP.

The fake GitHub's bodies are our reading of the OpenAPI description; these are GitHub's own. Pointing
the forge at a replay of a recorded scenario shows that it parses what GitHub actually sends.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from doubles.github_openapi import RecordedCall, recorded_calls
from doubles.http_server import ServerThread

_KEPT_HEADERS = ("retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "location", "link")


@dataclass
class Replayed:
    method: str
    path: str
    body: Any
    matched: RecordedCall | None


@dataclass
class ReplayGitHub:
    """Serves the recorded calls of some scenarios, each at most once, in order; anything else is a 404."""

    scenarios: list[str]
    seen: list[Replayed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pending = [call for scenario in self.scenarios for call in recorded_calls(scenario)]
        self._lock = threading.Lock()
        self._thread = ServerThread(self._app(), name="replay-github")
        self.url = f"http://127.0.0.1:{self._thread.port}"

    def __enter__(self) -> ReplayGitHub:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._thread.stop()

    @property
    def misses(self) -> list[Replayed]:
        return [item for item in self.seen if item.matched is None]

    def _app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def replay(request: Request, rest: str) -> Response:
            raw = await request.body()
            path = "/" + rest + (f"?{request.url.query}" if request.url.query else "")
            with self._lock:
                call = next((c for c in self._pending if c.method == request.method and c.path == path), None)
                if call is not None:
                    self._pending.remove(call)
                self.seen.append(Replayed(request.method, path, json.loads(raw) if raw else None, call))
            if call is None:
                return JSONResponse({"message": "Not Found (not recorded)"}, status_code=404)
            headers = {key: value for key, value in call.headers.items() if key in _KEPT_HEADERS}
            if call.response in ("", None):
                return Response(status_code=call.status, headers=headers)
            return JSONResponse(call.response, status_code=call.status, headers=headers)

        return app
