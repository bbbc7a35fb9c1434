"""The OpenAI-compatible provider over real HTTP against the scripted double."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime

import httpx
import pytest
from doubles.openai_server import Cut, Fail, Garbage, OpenAIDouble, Reply, Reset, ScriptedToolCall, Stall
from provider_fixtures import RecordingSleep, model_entry, module_double, turn_facts

from activities.agents.base import ProviderError
from activities.agents.http_retry import (
    CallContext,
    RetryPolicy,
    as_application_error,
    backoff_delay,
    classify,
    parse_retry_after,
)
from activities.agents.openai_compat import ERROR_FINISH_REASON, OpenAICompatProvider
from activities.agents.registry import ModelEntry, Price, ProviderKind
from contracts.agents import Attribution, Message, ModelRequest, Role, ToolCall, ToolSpec

KEY_ENV = "TEST_OPENAI_KEY"
KEY = "sk-test-0123456789abcdef0123"
ENV = {KEY_ENV: KEY}
ATTRIBUTION = Attribution(team="core", service="billing", spec="S-1", workflow_id="wf-1", role=Role.coder)
READ_FILE = ToolSpec(name="read_file", description="Read a file", parameters={
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})


server = module_double(lambda: OpenAIDouble(api_key=KEY))


def entry_for(server: OpenAIDouble, **overrides: object) -> ModelEntry:
    return model_entry("coder-model", ProviderKind.openai, server.base_url, KEY_ENV, "qwen2.5-coder",
                       Price(input_per_mtok=2.0, output_per_mtok=8.0), **overrides)


def request(messages: list[Message] | None = None, tools: list[ToolSpec] | None = None) -> ModelRequest:
    return ModelRequest(model="coder-model", messages=messages or [Message(role="user", content="fix the bug")],
                        tools=tools or [], max_tokens=256, temperature=0.2, attribution=ATTRIBUTION)


async def test_tool_calls_round_trip_in_openai_shape(server: OpenAIDouble) -> None:
    server.script(Reply(content=None, tool_calls=[ScriptedToolCall(id="call_9", name="read_file",
                                                                   arguments={"path": "src/app.py"})],
                        input_tokens=1000, output_tokens=500, model="qwen2.5-coder-served"))
    history = [
        Message(role="system", content="You are a coder."),
        Message(role="user", content="fix the bug"),
        Message(role="assistant", content="", tool_calls=[ToolCall(id="call_1", name="read_file",
                                                                   arguments={"path": "README.md"})]),
        Message(role="tool", tool_call_id="call_1", content="# readme"),
    ]
    provider = OpenAICompatProvider(entry_for(server), env=ENV)
    turn = await provider.complete(request(history, [READ_FILE]))

    sent = server.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.body
    assert body["model"] == "qwen2.5-coder"
    assert (body["max_tokens"], body["temperature"]) == (256, 0.2)
    assert body["tools"] == [{"type": "function", "function": {
        "name": "read_file", "description": "Read a file", "parameters": READ_FILE.parameters}}]
    assistant, tool = body["messages"][2], body["messages"][3]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["tool_calls"][0]["function"]["name"] == "read_file"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"path": "README.md"}
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "# readme"}

    assert turn_facts(turn) == (
        [ToolCall(id="call_9", name="read_file", arguments={"path": "src/app.py"})], "tool_calls", (1000, 500),
        "qwen2.5-coder-served", "openai", pytest.approx(1000 * 2.0 / 1e6 + 500 * 8.0 / 1e6),
    )


async def test_text_answer(server: OpenAIDouble) -> None:
    server.script(Reply(content="done", finish_reason="stop"))
    turn = await OpenAICompatProvider(entry_for(server), env=ENV).complete(request())
    assert (turn.message.content, turn.message.tool_calls, turn.finish_reason) == ("done", [], "stop")
    assert "tools" not in server.requests[0].body


async def test_malformed_tool_arguments_become_an_error_turn(server: OpenAIDouble) -> None:
    server.script(Reply(content="writing", tool_calls=[
        ScriptedToolCall(id="call_ok", name="read_file", arguments={"path": "a"}),
        ScriptedToolCall(id="call_bad", name="write_file", arguments='{"path": "a.py", "content": '),
    ]))
    turn = await OpenAICompatProvider(entry_for(server), env=ENV).complete(request())
    assert turn.finish_reason == ERROR_FINISH_REASON
    assert turn.message.tool_calls == []
    assert "write_file" in turn.message.content and "call_bad" in turn.message.content
    assert "malformed JSON arguments" in turn.message.content
    assert turn.usage.output_tokens == 7


async def test_429_is_retried_after_the_servers_retry_after(server: OpenAIDouble) -> None:
    server.script(Fail(status=429, message="rate limited", retry_after="2"), Reply(content="ok"))
    sleep = RecordingSleep()
    turn = await OpenAICompatProvider(entry_for(server), env=ENV, sleep=sleep).complete(request())
    assert turn.message.content == "ok"
    assert sleep.delays == [2.0]
    assert len(server.requests) == 2


async def test_a_retry_after_past_the_cap_goes_to_temporal(server: OpenAIDouble) -> None:
    server.script(Fail(status=429, message="come back in an hour", retry_after="3600"), Reply(content="never"))
    sleep = RecordingSleep()
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server), env=ENV, sleep=sleep).complete(request())
    assert caught.value.retryable
    assert caught.value.retry_after_s == 3600
    assert caught.value.error_type == "rate_limited"
    assert sleep.delays == []
    app_error = as_application_error(caught.value)
    assert not app_error.non_retryable
    assert app_error.next_retry_delay is not None and app_error.next_retry_delay.total_seconds() == 3600


async def test_server_errors_exhaust_retries_then_stay_retryable(server: OpenAIDouble) -> None:
    server.script(*[Fail(status=500, message="boom")] * 3)
    sleep = RecordingSleep()
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server, max_retries=2), env=ENV, sleep=sleep).complete(request())
    assert caught.value.retryable
    assert caught.value.error_type == "server_error"
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(server.requests) == 3
    assert len(sleep.delays) == 2 and sleep.delays[1] > sleep.delays[0] / 2


async def test_401_is_not_retried_and_says_which_variable(server: OpenAIDouble) -> None:
    server.script(Reply(content="never"))
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server), env={KEY_ENV: "sk-wrong-key-000000000000000"}).complete(
            request())
    error = caught.value
    assert not error.retryable
    assert error.error_type == "authentication_error"
    assert "authentication failed for model 'coder-model'" in str(error)
    assert f"check env var {KEY_ENV}" in str(error)
    assert "sk-wrong-key" not in str(error)
    assert len(server.requests) == 1
    assert as_application_error(error).non_retryable


async def test_a_missing_key_variable_fails_before_any_request(server: OpenAIDouble) -> None:
    server.script(Reply(content="never"))
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server), env={}).complete(request())
    assert not caught.value.retryable
    assert f"env var {KEY_ENV} is not set" in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize(("status", "error_type"), [(400, "bad_request"), (404, "not_found"),
                                                     (422, "unprocessable_entity")])
async def test_client_errors_are_not_retried(server: OpenAIDouble, status: int, error_type: str) -> None:
    server.script(Fail(status=status, message="context length exceeded"), Reply(content="never"))
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server), env=ENV).complete(request())
    assert not caught.value.retryable
    assert caught.value.error_type == error_type
    assert "context length exceeded" in str(caught.value)
    assert len(server.requests) == 1


async def test_a_stalled_server_never_holds_the_call_past_its_deadline(server: OpenAIDouble) -> None:
    server.script(Stall(seconds=30), Stall(seconds=30))
    provider = OpenAICompatProvider(entry_for(server, timeout_s=0.3, max_retries=3), env=ENV)
    # The outer bound only turns a hang into a failure; the provider's own deadline must fire first.
    with pytest.raises(ProviderError) as caught:
        await asyncio.wait_for(provider.complete(request()), timeout=20)
    assert caught.value.retryable
    assert caught.value.error_type == "timeout"
    assert len(server.requests) == 1


async def test_a_body_that_is_not_a_completion_is_a_clear_error(server: OpenAIDouble) -> None:
    server.script(Garbage())
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server), env=ENV).complete(request())
    assert caught.value.error_type == "invalid_response"
    assert "check base_url" in str(caught.value)


async def test_a_complete_answer_with_json_cut_short_is_not_retried_and_says_what_it_is(server: OpenAIDouble) -> None:
    server.script(Garbage(body='{"id": "chatcmpl-1", "choices": [{"ind', media_type="application/json"))
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server, max_retries=3), env=ENV).complete(request())
    assert not caught.value.retryable and caught.value.error_type == "invalid_response"
    assert "with JSON that does not parse, cut short or malformed" in str(caught.value)
    assert "base_url" not in str(caught.value)  # the endpoint is right; what it sent is broken
    assert len(server.requests) == 1


@pytest.mark.parametrize("fault", [Reset(), Cut(keep=40)], ids=["reset", "cut-mid-body"])
async def test_a_connection_reset_or_cut_mid_body_is_retried(server: OpenAIDouble, fault: Reset | Cut) -> None:
    server.script(fault, Reply(content="done"))
    sleep = RecordingSleep()
    turn = await OpenAICompatProvider(entry_for(server, max_retries=1), env=ENV, sleep=sleep).complete(request())
    assert turn.message.content == "done"
    assert len(server.requests) == 2 and len(sleep.delays) == 1


@pytest.mark.parametrize("fault", [Reset(), Cut(keep=40)], ids=["reset", "cut-mid-body"])
async def test_a_broken_connection_left_to_temporal_is_a_retryable_connection_error(
        server: OpenAIDouble, fault: Reset | Cut) -> None:
    server.script(fault)
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry_for(server, max_retries=0), env=ENV).complete(request())
    assert caught.value.retryable and caught.value.error_type == "connection_error"
    assert "Check base_url and that the server is running" in str(caught.value)


async def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    with OpenAIDouble() as gone:
        url = gone.base_url
    entry = ModelEntry(name="m", provider=ProviderKind.openai, base_url=url, max_retries=1, timeout_s=5)
    sleep = RecordingSleep()
    with pytest.raises(ProviderError) as caught:
        await OpenAICompatProvider(entry, env={}, sleep=sleep).complete(request())
    assert caught.value.retryable
    assert caught.value.error_type == "connection_error"
    assert len(sleep.delays) == 1


async def test_an_injected_client_is_used_and_left_open(server: OpenAIDouble) -> None:
    server.script(Reply(content="pooled"))
    async with httpx.AsyncClient() as client:
        turn = await OpenAICompatProvider(entry_for(server), env=ENV, client=client).complete(request())
        assert not client.is_closed
    assert turn.message.content == "pooled"


def test_retry_after_accepts_seconds_http_dates_and_milliseconds() -> None:
    now = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "17"}) == 17
    assert parse_retry_after({"retry-after": "Fri, 31 Jan 2025 12:00:30 GMT"}, now=now) == 30
    assert parse_retry_after({"retry-after": "Fri, 31 Jan 2025 11:00:00 GMT"}, now=now) == 0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    rng = random.Random(7)
    delays = [backoff_delay(attempt, policy, rng) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        step = min(8, 2**attempt)
        assert step / 2 <= delay <= step
    assert len(set(delays)) == len(delays)


def test_error_messages_scrub_the_key() -> None:
    response = httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {KEY}"}},
                              request=httpx.Request("POST", "http://x/v1/chat/completions"))
    context = CallContext(model_name="m", provider="openai", url="http://x", api_key_env=KEY_ENV)
    error = classify(response, context, secrets=(KEY,))
    assert KEY not in str(error)
    assert "***" in str(error)
