"""A local Anthropic Messages API server that plays the same scripts as the OpenAI double.

Success bodies are validated against the official `anthropic` package's `Message` type when that
package is installed; the contract test drives the official client against every kind of answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from doubles.openai_server import Fail, Garbage, ReceivedRequest, Reply, ServerThread, Stall, Step

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_FINISH_TO_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


class AnthropicDouble:
    """`with AnthropicDouble() as server:`; point clients at `server.base_url` (no /v1: the client adds it)."""

    def __init__(self, *, api_key: str | None = "test-key", steps: Iterable[Step] = ()) -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self._steps: deque[Step] = deque(steps)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = ServerThread(self._app())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._thread.port}"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps = deque(steps)
            self.requests.clear()

    def __enter__(self) -> AnthropicDouble:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._thread.stop()

    def _next(self) -> Step | None:
        with self._lock:
            return self._steps.popleft() if self._steps else None

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/messages")
        async def messages(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                self.requests.append(ReceivedRequest(path=request.url.path, headers=dict(request.headers), body=body))
            # The API takes the key as `x-api-key`; newer official clients send `Authorization: Bearer`.
            presented = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
                "Bearer ")
            if self.api_key is not None and presented != self.api_key:
                return error_response(Fail(status=401, message="invalid x-api-key"))
            if not request.headers.get("anthropic-version"):
                return error_response(Fail(status=400, message="anthropic-version: header is required"))
            step = self._next()
            if step is None:
                return error_response(Fail(status=500, message="the test double's script is exhausted"))
            if isinstance(step, Stall):
                deadline = time.monotonic() + step.seconds
                while time.monotonic() < deadline and not self._stopping.is_set():
                    await asyncio.sleep(0.02)
                step = step.then
            if isinstance(step, Fail):
                return error_response(step)
            if isinstance(step, Garbage):
                return Response(step.body, media_type="text/html")
            return JSONResponse(message_body(step, body.get("model", "unknown")))

        return app


def message_body(reply: Reply, requested_model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.content:
        content.append({"type": "text", "text": reply.content})
    for call in reply.tool_calls:
        if isinstance(call.arguments, str):
            raise ValueError("the Messages API carries tool input as a JSON object; a raw string cannot be served")
        content.append({"type": "tool_use", "id": call.id or f"toolu_{uuid.uuid4().hex[:20]}", "name": call.name,
                        "input": call.arguments})
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    body = {
        "id": f"msg_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or requested_model,
        "content": content,
        "stop_reason": _FINISH_TO_STOP.get(finish, finish),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }
    try:
        from anthropic.types import Message
    except ImportError:  # the double still works; the contract test says it skipped
        return body
    Message.model_validate(body)
    return body


def error_response(fail: Fail) -> JSONResponse:
    headers = {"retry-after": fail.retry_after} if fail.retry_after is not None else None
    kind = fail.error_type or _ERROR_TYPES.get(fail.status, "api_error")
    payload = {"type": "error", "error": {"type": kind, "message": fail.message}}
    return JSONResponse(payload, status_code=fail.status, headers=headers)
