"""The hf-local provider: loading, prompts, tool-call parsing and real token usage, on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from doubles.tiny_model import build_tiny_model, skip_without_gpu_extra

from activities.agents.hf_local import ContextTooLongError, HFLocalModel, ModelNotFoundError, parse_reply
from contracts.agents import Attribution, Message, ModelRequest, Role, ToolCall, ToolSpec

READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file of the workspace.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
# Knows only system/user/assistant, ignores `tools`, and refuses a `tool` message, as many real templates do.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unsupported role ' + m['role']) }}{% endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
)


def request(text: str, *, max_tokens: int = 12) -> ModelRequest:
    return ModelRequest(
        model="tiny",
        messages=[Message(role="system", content="You are a coding agent."), Message(role="user", content=text)],
        max_tokens=max_tokens,
        attribution=Attribution(team="t", service="s", spec="spec-1", workflow_id="wf", role=Role.coder),
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skip_without_gpu_extra()
    return build_tiny_model(tmp_path_factory.mktemp("hf") / "tiny")


# -- reply parsing (no torch needed) ---------------------------------------------------------------


def test_tagged_tool_calls_are_parsed_and_the_rest_is_content() -> None:
    text = (
        "I will look first.\n"
        '<tool_call>{"name": "read_file", "arguments": {"path": "app/main.py"}}</tool_call>\n'
        '<tool_call>{"name": "run_command", "arguments": "{\\"command\\": \\"pytest -q\\"}"}</tool_call>'
    )
    content, calls = parse_reply(text)
    assert content == "I will look first."
    assert [(c.name, c.arguments) for c in calls] == [
        ("read_file", {"path": "app/main.py"}),
        ("run_command", {"command": "pytest -q"}),
    ]
    assert len({c.id for c in calls}) == 2
    assert parse_reply(text)[1] == calls  # ids are stable: the same reply gives the same ids


def test_a_fenced_json_object_of_tool_calls_is_parsed() -> None:
    body = json.dumps({"tool_calls": [{"name": "write_file", "arguments": {"path": "a.py", "content": "x = 1\n"}}]})
    content, calls = parse_reply(f"Writing it now.\n```json\n{body}\n```\n")
    assert content == "Writing it now."
    assert [(c.name, c.arguments) for c in calls] == [("write_file", {"path": "a.py", "content": "x = 1\n"})]


def test_a_bare_json_reply_with_tool_calls_in_the_openai_shape_is_parsed() -> None:
    body = {"tool_calls": [{"type": "function", "function": {"name": "finish", "arguments": "{}"}}]}
    content, calls = parse_reply(json.dumps(body))
    assert content == ""
    assert [(c.name, c.arguments) for c in calls] == [("finish", {})]


@pytest.mark.parametrize(
    "text",
    [
        "The change is done: the endpoint returns 200.",
        '<tool_call>{"name": "read_file", "arguments": {"path": </tool_call>',  # malformed JSON
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        '```json\n{"answer": 42}\n```',  # JSON, but no tool_calls
        '{"tool_calls": []}',
    ],
)
def test_anything_else_is_a_final_answer(text: str) -> None:
    content, calls = parse_reply(text)
    assert calls == []
    assert content == text.strip()


# -- the model -------------------------------------------------------------------------------------


async def test_a_model_call_gives_a_turn_with_real_token_counts(tiny: Path) -> None:
    from transformers import AutoTokenizer

    model = HFLocalModel(tiny)
    turn = await model.complete(request("Add a health endpoint.", max_tokens=12))

    tokenizer = AutoTokenizer.from_pretrained(tiny, local_files_only=True)
    conversation = [{"role": "system", "content": "You are a coding agent."},
                    {"role": "user", "content": "Add a health endpoint."}]
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert turn.usage.input_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert 1 <= turn.usage.output_tokens <= 12
    assert turn.finish_reason in {"stop", "length", "tool_calls"}
    if turn.finish_reason == "length":
        assert turn.usage.output_tokens == 12
    assert (turn.provider, turn.model, turn.message.role) == ("hf-local", "tiny", "assistant")
    assert turn.duration_s > 0


def test_the_model_is_loaded_once_per_process(tiny: Path) -> None:
    first, second = HFLocalModel(tiny), HFLocalModel(str(tiny) + "/")
    assert first.source == second.source
    assert first._model is second._model
    assert (first.device, str(first.dtype)) == ("cpu", "torch.float32") or first.device.startswith("cuda")


def test_the_chat_template_is_used_and_shown_the_tools(tiny: Path) -> None:
    model = HFLocalModel(tiny)
    messages = [
        Message(role="user", content="Read the main module."),
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="read_file", arguments={"path": "app.py"})]),
        Message(role="tool", content="print('hi')", tool_call_id="c1", name="read_file"),
    ]
    prompt = model.encode(messages, [READ_FILE])
    assert prompt.templated
    assert prompt.text.startswith("<s><|im_start|>system\nTools: ")
    assert '"name": "read_file"' in prompt.text
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert len(prompt.ids) == len(model.tokenizer(prompt.text, add_special_tokens=False)["input_ids"])


def test_a_template_that_ignores_tools_and_tool_messages_gets_text_and_instructions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    skip_without_gpu_extra()
    folder = build_tiny_model(tmp_path_factory.mktemp("hf") / "plain", chat_template=PLAIN_TEMPLATE)
    model = HFLocalModel(folder)
    messages = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Read app.py."),
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="read_file", arguments={"path": "app.py"})]),
        Message(role="tool", content="print('hi')", tool_call_id="c1", name="read_file"),
    ]
    text, templated = model.render(messages, [READ_FILE])
    assert templated
    assert text.startswith("[system] Be brief.\n\nYou can call tools.")
    assert "- read_file: Read a file of the workspace." in text
    assert '[assistant] \n<tool_call>{"name": "read_file", "arguments": {"path": "app.py"}}</tool_call>' in text
    assert '[user] <tool_response name="read_file">\nprint(\'hi\')\n</tool_response>' in text
    assert text.endswith("[assistant] ")


def test_without_a_chat_template_the_prompt_is_role_tagged(tmp_path_factory: pytest.TempPathFactory) -> None:
    skip_without_gpu_extra()
    folder = build_tiny_model(tmp_path_factory.mktemp("hf") / "bare", chat_template=None)
    model = HFLocalModel(folder)
    text, templated = model.render([Message(role="user", content="Fix the bug.")], [READ_FILE])
    assert not templated
    assert text.startswith("<s><|system|>\nYou can call tools.")
    assert text.endswith("<|user|>\nFix the bug.\n<|assistant|>\n")


def test_new_tokens_stop_at_the_context_window(tiny: Path) -> None:
    model = HFLocalModel(tiny)
    window = model.context_window
    assert model.new_token_budget(10, 100) == 100
    assert model.new_token_budget(window - 5, 100) == 5
    with pytest.raises(ContextTooLongError, match="context window") as caught:
        model.new_token_budget(window, 100)
    assert not caught.value.retryable


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    skip_without_gpu_extra()
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        HFLocalModel(tmp_path / "no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="cannot load a causal LM"):
        HFLocalModel(tmp_path / "empty")


@pytest.mark.gpu
def test_cuda_is_used_when_there_is_a_gpu(tiny: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device: torch {torch.__version__} sees no GPU on this machine")
    model = HFLocalModel(tiny)
    assert model.device == "cuda"
    assert model.dtype == torch.bfloat16
    assert next(model._model.parameters()).is_cuda
    prompt = model.encode([Message(role="user", content="hello")])
    from activities.agents.batching import RowControl

    generation = model.generate_batch([prompt.ids], [4], [RowControl()])[0]
    assert 1 <= len(generation.tokens) <= 4
