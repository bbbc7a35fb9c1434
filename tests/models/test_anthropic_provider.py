"""The Anthropic provider over real HTTP against the Messages double."""

from __future__ import annotations

import asyncio

import pytest
from doubles.anthropic_server import AnthropicDouble
from doubles.openai_server import Fail, Reply, ScriptedToolCall, Stall
from provider_fixtures import RecordingSleep, model_entry, module_double, turn_facts

from activities.agents.anthropic import ANTHROPIC_VERSION, AnthropicProvider
from activities.agents.base import ProviderError
from activities.agents.registry import ModelEntry, Price, ProviderKind
from contracts.agents import Attribution, Message, ModelRequest, Role, ToolCall, ToolSpec

KEY_ENV = "TEST_ANTHROPIC_KEY"
KEY = "sk-ant-test-0123456789abcdef"
ENV = {KEY_ENV: KEY}
ATTRIBUTION = Attribution(team="core", service="billing", spec="S-1", workflow_id="wf-1", role=Role.reviewer)
TOOL = ToolSpec(name="read_file", description="Read a file",
                parameters={"type": "object", "properties": {"path": {"type": "string"}}})


server = module_double(lambda: AnthropicDouble(api_key=KEY))


def entry_for(server: AnthropicDouble, **overrides: object) -> ModelEntry:
    return model_entry("reviewer", ProviderKind.anthropic, server.base_url, KEY_ENV, "claude-test",
                       Price(input_per_mtok=3.0, output_per_mtok=15.0), **overrides)


def request(messages: list[Message]) -> ModelRequest:
    return ModelRequest(model="reviewer", messages=messages, tools=[TOOL], max_tokens=300, attribution=ATTRIBUTION)


async def test_tool_use_round_trip_in_messages_shape(server: AnthropicDouble) -> None:
    server.script(Reply(content="Reading it.", tool_calls=[ScriptedToolCall(id="toolu_2", name="read_file",
                                                                            arguments={"path": "b.py"})],
                        input_tokens=2000, output_tokens=100, model="claude-test-20250101"))
    history = [
        Message(role="system", content="You review code."),
        Message(role="user", content="review this"),
        Message(role="assistant", content="Let me read two files.", tool_calls=[
            ToolCall(id="toolu_a", name="read_file", arguments={"path": "a.py"}),
            ToolCall(id="toolu_b", name="read_file", arguments={"path": "c.py"}),
        ]),
        Message(role="tool", tool_call_id="toolu_a", content="print('a')"),
        Message(role="tool", tool_call_id="toolu_b", content="print('c')"),
    ]
    turn = await AnthropicProvider(entry_for(server), env=ENV).complete(request(history))

    sent = server.requests[0]
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION
    body = sent.body
    assert body["system"] == "You review code."
    assert body["model"] == "claude-test"
    assert body["tools"] == [{"name": "read_file", "description": "Read a file", "input_schema": TOOL.parameters}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me read two files."},
        {"type": "tool_use", "id": "toolu_a", "name": "read_file", "input": {"path": "a.py"}},
        {"type": "tool_use", "id": "toolu_b", "name": "read_file", "input": {"path": "c.py"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "print('a')"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "print('c')"},
    ]

    assert turn.message.content == "Reading it."
    assert turn_facts(turn) == (
        [ToolCall(id="toolu_2", name="read_file", arguments={"path": "b.py"})], "tool_calls", (2000, 100),
        "claude-test-20250101", "anthropic", pytest.approx(2000 * 3 / 1e6 + 100 * 15 / 1e6),
    )


async def test_end_turn_maps_to_stop(server: AnthropicDouble) -> None:
    server.script(Reply(content="Looks good."))
    turn = await AnthropicProvider(entry_for(server), env=ENV).complete(request([Message(role="user", content="?")]))
    assert (turn.message.content, turn.finish_reason) == ("Looks good.", "stop")
    assert "system" not in server.requests[0].body


async def test_overloaded_529_is_retried_after_retry_after(server: AnthropicDouble) -> None:
    server.script(Fail(status=529, message="Overloaded", retry_after="1"), Reply(content="ok"))
    sleep = RecordingSleep()
    turn = await AnthropicProvider(entry_for(server), env=ENV, sleep=sleep).complete(
        request([Message(role="user", content="?")]))
    assert turn.message.content == "ok"
    assert sleep.delays == [1.0]


async def test_401_is_not_retried_and_names_the_variable(server: AnthropicDouble) -> None:
    server.script(Reply(content="never"))
    with pytest.raises(ProviderError) as caught:
        await AnthropicProvider(entry_for(server), env={KEY_ENV: "sk-ant-wrong-000000000000"}).complete(
            request([Message(role="user", content="?")]))
    assert not caught.value.retryable
    assert caught.value.error_type == "authentication_error"
    assert f"check env var {KEY_ENV}" in str(caught.value)
    assert "invalid x-api-key" in str(caught.value)
    assert len(server.requests) == 1


async def test_a_stalled_server_never_holds_the_call_past_its_deadline(server: AnthropicDouble) -> None:
    server.script(Stall(seconds=30))
    provider = AnthropicProvider(entry_for(server, timeout_s=0.3), env=ENV)
    with pytest.raises(ProviderError) as caught:
        await asyncio.wait_for(provider.complete(request([Message(role="user", content="?")])), timeout=20)
    assert caught.value.error_type == "timeout"
