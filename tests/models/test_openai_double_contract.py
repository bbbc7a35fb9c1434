"""The OpenAI and Anthropic doubles are held to the official clients: whatever they serve, the real
`openai` / `anthropic` package parses, and errors surface as that package's exception classes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from doubles.anthropic_server import AnthropicDouble
from doubles.openai_server import Fail, OpenAIDouble, Reply, ScriptedToolCall
from openai.types.chat import ChatCompletionMessageFunctionToolCall

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIDouble]:
    with OpenAIDouble(api_key="test-key") as double:
        yield double


@pytest.fixture
def client(server: OpenAIDouble) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=10)


def test_client_parses_a_text_completion_with_usage(server: OpenAIDouble, client: openai.OpenAI) -> None:
    server.script(Reply(content="hi there", input_tokens=12, output_tokens=3, model="served-model"))
    completion = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "served-model"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)


def test_client_parses_tool_calls(server: OpenAIDouble, client: openai.OpenAI) -> None:
    server.script(Reply(content=None, tool_calls=[ScriptedToolCall(id="call_1", name="read_file",
                                                                   arguments={"path": "a.py"})]))
    completion = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.type == "function"
    assert call.id == "call_1"
    assert call.function.name == "read_file"
    assert json.loads(call.function.arguments) == {"path": "a.py"}


def test_client_accepts_malformed_arguments_as_a_string(server: OpenAIDouble, client: openai.OpenAI) -> None:
    server.script(Reply(tool_calls=[ScriptedToolCall(name="write_file", arguments='{"path": "a.py",')]))
    completion = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.tool_calls is not None
    call = completion.choices[0].message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.arguments == '{"path": "a.py",'


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_client_maps_scripted_errors_to_its_exception_classes(
    server: OpenAIDouble, client: openai.OpenAI, status: int, exception: type[openai.APIStatusError]
) -> None:
    server.script(Fail(status=status, message=f"scripted {status}"))
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == status
    assert f"scripted {status}" in caught.value.message


def test_client_sees_a_wrong_key_as_authentication_error(server: OpenAIDouble) -> None:
    wrong = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    server.script(Reply(content="never served"))
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_api_key"


def test_client_sees_429_with_retry_after(server: OpenAIDouble, client: openai.OpenAI) -> None:
    server.script(Fail(status=429, message="slow down", retry_after="7"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.response.headers["retry-after"] == "7"


def test_client_retries_after_a_429_and_gets_the_answer(server: OpenAIDouble) -> None:
    retrying = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=1)
    server.script(Fail(status=429, message="slow down", retry_after="0"), Reply(content="second time"))
    completion = retrying.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "second time"
    assert len(server.requests) == 2


# --- the Anthropic Messages double, held to the official `anthropic` client -----------------------------


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[AnthropicDouble]:
    with AnthropicDouble(api_key="test-key") as double:
        yield double


def _anthropic_client(server: AnthropicDouble, key: str = "test-key", retries: int = 0) -> tuple[Any, Any]:
    anthropic = pytest.importorskip("anthropic", reason="the `anthropic` package validates the Messages double")
    return anthropic, anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=retries, timeout=10)


def test_anthropic_client_parses_text_and_tool_use(anthropic_server: AnthropicDouble) -> None:
    _, client = _anthropic_client(anthropic_server)
    anthropic_server.script(Reply(content="let me look", tool_calls=[
        ScriptedToolCall(id="toolu_1", name="read_file", arguments={"path": "a.py"})], input_tokens=20,
        output_tokens=9))
    message = client.messages.create(model="claude-x", max_tokens=100,
                                     messages=[{"role": "user", "content": "hello"}])
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"path": "a.py"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 9)


@pytest.mark.parametrize(("status", "name"), [(400, "BadRequestError"), (401, "AuthenticationError"),
                                              (429, "RateLimitError"), (500, "InternalServerError"),
                                              (529, "OverloadedError")])
def test_anthropic_client_maps_errors(anthropic_server: AnthropicDouble, status: int, name: str) -> None:
    anthropic, client = _anthropic_client(anthropic_server)
    anthropic_server.script(Fail(status=status, message=f"scripted {status}", retry_after="3"))
    with pytest.raises(getattr(anthropic, name)) as caught:
        client.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status
    assert caught.value.response.headers["retry-after"] == "3"


def test_anthropic_client_retries_after_a_429(anthropic_server: AnthropicDouble) -> None:
    _, client = _anthropic_client(anthropic_server, retries=1)
    anthropic_server.script(Fail(status=429, retry_after="0"), Reply(content="ok"))
    message = client.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "ok"
    assert len(anthropic_server.requests) == 2
