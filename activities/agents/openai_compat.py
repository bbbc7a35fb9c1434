"""OpenAI-compatible chat completions: OpenAI itself, vLLM, Ollama, llama.cpp server and gateways.

Only the common subset of `POST {base_url}/chat/completions` is used (messages, tools, max_tokens,
temperature), so one adapter serves every server that speaks it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.agents.http_provider import HttpChatProvider
from activities.agents.http_retry import body_error
from activities.agents.registry import ModelEntry
from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, ToolSpec, Usage

ERROR_FINISH_REASON = "error"


class _Function(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str | dict[str, Any] | None = None


class _ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    function: _Function


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0


class _Completion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class OpenAICompatProvider(HttpChatProvider):
    """One chat completion per call, retried by http_retry; the key comes from `entry.api_key_env`."""

    name = "openai"
    path = "/chat/completions"

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return build_body(self.entry.model, request)

    def parse(self, response: httpx.Response) -> ModelTurn:
        return parse_completion(response, self.entry)


def build_body(remote_model: str, request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": remote_model,
        "messages": [to_openai_message(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.tools:
        body["tools"] = [to_openai_tool(t) for t in request.tools]
    return body


def to_openai_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
            for call in message.tool_calls
        ]
    return out


def to_openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}


def parse_completion(response: httpx.Response, entry: ModelEntry) -> ModelTurn:
    """Read choices[0]. Malformed tool-call arguments give an error turn the agent loop can show the model."""
    try:
        completion = _Completion.model_validate(response.json())
    except (ValueError, ValidationError) as err:
        raise body_error(response, entry.name, "an OpenAI chat completion",
                         "check base_url points at an OpenAI-compatible /v1 API", err) from err
    choice = completion.choices[0]
    usage = completion.usage or _Usage()
    turn_usage = Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0)
    model = completion.model or entry.model
    content = _text(choice.message.content)
    calls: list[ToolCall] = []
    problems: list[str] = []
    for index, raw in enumerate(choice.message.tool_calls or []):
        call_id = raw.id or f"call_{index}"
        arguments, problem = _arguments(raw.function.arguments)
        if problem is not None:
            excerpt = str(raw.function.arguments)[:200]
            problems.append(f"tool call {raw.function.name!r} (id {call_id}) has malformed JSON arguments: "
                            f"{problem}; received: {excerpt}")
            continue
        calls.append(ToolCall(id=call_id, name=raw.function.name, arguments=arguments))
    if problems:
        note = "; ".join(problems)
        return ModelTurn(
            message=Message(role="assistant", content=(content + "\n\n" if content else "") + f"[spec2ship] {note}"),
            usage=turn_usage, model=model, provider=OpenAICompatProvider.name, finish_reason=ERROR_FINISH_REASON,
        )
    return ModelTurn(
        message=Message(role="assistant", content=content, tool_calls=calls),
        usage=turn_usage, model=model, provider=OpenAICompatProvider.name,
        finish_reason=choice.finish_reason or ("tool_calls" if calls else "stop"),
    )


def _arguments(raw: str | dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, dict):
        return raw, None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        return {}, str(err)
    if not isinstance(value, dict):
        return {}, f"expected a JSON object, got {type(value).__name__}"
    return value, None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
