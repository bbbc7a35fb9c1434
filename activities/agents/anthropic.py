"""Anthropic's Messages API (`POST {base_url}/v1/messages`).

Our messages follow the OpenAI chat shape; here they become Anthropic's: the system prompt is a
separate field, tool calls are `tool_use` blocks in the assistant turn, and tool results are
`tool_result` blocks in the following user turn. Stop reasons are mapped back to OpenAI's words so
the agent loop sees one vocabulary.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from activities.agents.http_provider import HttpChatProvider
from activities.agents.http_retry import body_error
from activities.agents.registry import ModelEntry
from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, Usage

ANTHROPIC_VERSION = "2023-06-01"
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    content: list[_Block]
    stop_reason: str | None = None
    usage: _Usage | None = None


class AnthropicProvider(HttpChatProvider):
    name = "anthropic"
    path = "/v1/messages"

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return build_body(self.entry.model, request)

    def parse(self, response: httpx.Response) -> ModelTurn:
        return parse_message(response, self.entry)


def build_body(remote_model: str, request: ModelRequest) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)
    body: dict[str, Any] = {
        "model": remote_model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "messages": to_anthropic_messages(request.messages),
    }
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
    return body


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Map to alternating user/assistant turns; consecutive same-role blocks are merged into one turn."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            blocks.append({"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                           "content": message.content})
        else:
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def parse_message(response: httpx.Response, entry: ModelEntry) -> ModelTurn:
    try:
        message = _Message.model_validate(response.json())
    except (ValueError, ValidationError) as err:
        raise body_error(response, entry.name, "an Anthropic message", "check base_url points at the Messages API",
                         err) from err
    text = "".join(block.text or "" for block in message.content if block.type == "text")
    calls = [
        ToolCall(id=block.id or f"toolu_{index}", name=block.name or "", arguments=block.input or {})
        for index, block in enumerate(message.content)
        if block.type == "tool_use"
    ]
    usage = message.usage or _Usage()
    # Cached prompt tokens are still input the call consumed; the registry has one input price.
    input_tokens = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    stop = message.stop_reason or ("tool_use" if calls else "end_turn")
    return ModelTurn(
        message=Message(role="assistant", content=text, tool_calls=calls),
        usage=Usage(input_tokens=input_tokens, output_tokens=usage.output_tokens),
        model=message.model or entry.model,
        provider=AnthropicProvider.name,
        finish_reason=STOP_REASONS.get(stop, stop),
    )
