"""A local Anthropic Messages API server that plays the same scripts as the OpenAI double.

Success bodies are validated against the official `anthropic` package's `Message` type when that
package is installed; the contract test drives the official client against every kind of answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from doubles.openai_server import Fail, Reply, ScriptedDouble

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


class AnthropicDouble(ScriptedDouble):
    """`with AnthropicDouble() as server:`; point clients at `server.base_url` (no /v1: the client adds it)."""

    route = "/v1/messages"
    error = staticmethod(error_response)
    success = staticmethod(message_body)

    def refuse(self, request: Request) -> Response | None:
        # The API takes the key as `x-api-key`; newer official clients send `Authorization: Bearer`.
        presented = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
            "Bearer ")
        if self.api_key is not None and presented != self.api_key:
            return error_response(Fail(status=401, message="invalid x-api-key"))
        if not request.headers.get("anthropic-version"):
            return error_response(Fail(status=400, message="anthropic-version: header is required"))
        return None
