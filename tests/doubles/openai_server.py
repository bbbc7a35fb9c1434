"""A local OpenAI-compatible chat completions server that plays a script of turns and failures.

It stands in for a paid or remote model. Every success body it serves is validated against the
official `openai` package's `ChatCompletion` type before it leaves, and the contract test drives the
official client against every kind of answer (tool_calls, usage, errors, 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from doubles.http_server import ServerThread

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


class ScriptedToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict, description="A str is sent verbatim (malformed).")
    id: str | None = None


class Reply(BaseModel):
    kind: Literal["reply"] = "reply"
    content: str | None = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    input_tokens: int = 11
    output_tokens: int = 7
    model: str | None = None
    finish_reason: str | None = None


class Fail(BaseModel):
    kind: Literal["fail"] = "fail"
    status: int
    message: str = "scripted failure"
    error_type: str | None = None
    code: str | None = None
    retry_after: str | None = None


class Stall(BaseModel):
    """Hold the request open for `seconds`, then answer `then` (tests that a client gives up in time)."""

    kind: Literal["stall"] = "stall"
    seconds: float
    then: Reply = Field(default_factory=Reply)


class Garbage(BaseModel):
    """A 200 answer that is not a chat completion: a misconfigured base_url (HTML), or with `media_type`
    application/json a complete answer whose JSON is cut short."""

    kind: Literal["garbage"] = "garbage"
    body: str = "<html>not an API</html>"
    media_type: str = "text/html"


class Reset(BaseModel):
    """The connection is reset (TCP RST) once the request is read: no status, no headers."""

    kind: Literal["reset"] = "reset"


class Cut(BaseModel):
    """The headers of `reply` with its full Content-Length, then only `keep` bytes of its body, then the
    connection closes: a completion truncated on the wire."""

    kind: Literal["cut"] = "cut"
    reply: Reply = Field(default_factory=Reply)
    keep: int = 40


Step = Reply | Fail | Stall | Garbage | Reset | Cut


class ReceivedRequest(BaseModel):
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedDouble:
    """The script, the recorded requests and the server thread that the OpenAI and Anthropic doubles share.

    A subclass names its one POST route (`route`, and `base_path` for `base_url`), says how its API
    refuses a request before any step is played (`refuse`: keys, headers) and how it renders a
    failure and a reply (`error`, `success`).
    """

    route: ClassVar[str]
    base_path: ClassVar[str] = ""

    def __init__(self, *, api_key: str | None = "test-key", steps: Iterable[Step] = ()) -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self._steps: deque[Step] = deque(steps)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = ServerThread(self._app())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._thread.port}{self.base_path}"

    def refuse(self, request: Request) -> Response | None:
        raise NotImplementedError(f"{type(self).__name__} must say which requests its API refuses")

    def error(self, fail: Fail) -> Response:
        raise NotImplementedError(f"{type(self).__name__} must render failures in its API's shape")

    def success(self, reply: Reply, requested_model: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must render replies in its API's shape")

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps = deque(steps)
            self.requests.clear()

    def __enter__(self) -> Self:
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

        async def answer(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            with self._lock:
                self.requests.append(ReceivedRequest(path=request.url.path, headers=dict(request.headers), body=body))
            refused = self.refuse(request)
            return refused if refused is not None else await self._play(body.get("model", "unknown"), request)

        app.add_api_route(self.route, answer, methods=["POST"])

        async def with_connection(scope: Any, receive: Any, send: Any) -> None:
            """uvicorn hands the app its connection's own `send`; its transport is what `Reset`/`Cut` break."""
            scope["double.transport"] = getattr(getattr(send, "__self__", None), "transport", None)
            await app(scope, receive, send)

        return with_connection  # type: ignore[return-value]

    async def _play(self, requested_model: str, request: Request) -> Response:
        step = self._next()
        if step is None:
            return self.error(Fail(status=500, message="the test double's script is exhausted"))
        if isinstance(step, Stall):
            deadline = time.monotonic() + step.seconds
            while time.monotonic() < deadline and not self._stopping.is_set():
                await asyncio.sleep(0.02)
            step = step.then
        if isinstance(step, Fail):
            return self.error(step)
        if isinstance(step, Garbage):
            return Response(step.body, media_type=step.media_type)
        if isinstance(step, Reset | Cut):
            return await _break(request, step, self.success(step.reply, requested_model) if isinstance(step, Cut)
                                else None)
        return JSONResponse(self.success(step, requested_model))


async def _break(request: Request, step: Reset | Cut, body: dict[str, Any] | None) -> Response:
    """Reset or cut the connection under the request, past anything uvicorn would answer."""
    transport = request.scope.get("double.transport")
    if transport is None:
        raise RuntimeError(f"{step.kind} needs uvicorn's transport; serve the double with ServerThread")
    if isinstance(step, Cut) and body is not None:
        data = json.dumps(body).encode()
        head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
                ).encode()
        transport.write(head + data[: step.keep])
        await asyncio.sleep(0.05)
        transport.close()
    else:
        sock = transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # Nothing more can reach the client; uvicorn's own answer goes to a closed transport.
    return Response(status_code=204)


def completion_body(reply: Reply, requested_model: str) -> dict[str, Any]:
    """A chat.completion object; validated with the official package's type before it is served."""
    from openai.types.chat import ChatCompletion

    tool_calls = [
        {
            "id": call.id or f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
            },
        }
        for call in reply.tool_calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or requested_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reply.finish_reason or ("tool_calls" if tool_calls else "stop"),
        }],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }
    ChatCompletion.model_validate(body)
    return body


def error_response(fail: Fail) -> JSONResponse:
    headers = {"retry-after": fail.retry_after} if fail.retry_after is not None else None
    payload = {"error": {"message": fail.message, "type": fail.error_type or _ERROR_TYPES.get(fail.status, "error"),
                         "param": None, "code": fail.code}}
    return JSONResponse(payload, status_code=fail.status, headers=headers)


class OpenAIDouble(ScriptedDouble):
    """`with OpenAIDouble() as server:` then `server.script(...)`; point clients at `server.base_url`."""

    route = "/v1/chat/completions"
    base_path = "/v1"
    error = staticmethod(error_response)
    success = staticmethod(completion_body)

    def refuse(self, request: Request) -> Response | None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error_response(Fail(status=401, message="Incorrect API key provided.", code="invalid_api_key"))
        return None
