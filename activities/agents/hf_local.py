"""A local Hugging Face causal LM, the `hf-local` provider that the GPU worker serves.

The weights are loaded once per process (a model is gigabytes; every activity shares it) from a local
folder, or from a hub id already in the local Hugging Face cache: nothing is downloaded at run time
(`local_files_only=True`, `HF_HUB_OFFLINE=1`). On CUDA the model runs in bfloat16, on the CPU in float32.

Prompts use the tokenizer's chat template when it has one (tools passed to it, and described in a
system message when the template ignores them), else a plain role-tagged format.

Tool calls are read from the generated text in either of two forms:

- one `<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}</tool_call>` block per call
  (what Qwen/Hermes-style chat templates teach their models), or
- a JSON object `{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}`, either the whole reply or
  inside a ```json fenced block.

`arguments` may also be a JSON-encoded string (the OpenAI wire form). Text outside the blocks is the
message content. Anything else, malformed blocks included, is a final answer.

torch and transformers are an optional extra (`spec2ship[gpu]`): they are imported when a model is
loaded, so this module (and the reply parser) import without them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities.agents.base import ProviderError
from activities.agents.batching import FinishReason, Generation, RowControl
from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    import torch

# Set before transformers/huggingface_hub are imported: they read it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROVIDER = "hf-local"
GPU_EXTRA_HINT = "install spec2ship[gpu] (pip install 'spec2ship[gpu]'), which brings torch and transformers"


class GPUExtraMissingError(ImportError):
    """torch or transformers is not installed where the GPU worker runs."""


class ModelNotFoundError(FileNotFoundError):
    """The model folder does not exist, or holds no loadable model, or the hub id is not in the local cache."""


class ContextTooLongError(ProviderError):
    """The prompt fills the model's context window: retrying the same request cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, error_type="context_length_exceeded")


def require_gpu_extra() -> None:
    """Fail with the install hint when the optional GPU dependencies are absent."""
    missing = []
    for module in ("torch", "transformers"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise GPUExtraMissingError(f"the GPU worker needs {' and '.join(missing)}, not installed: {GPU_EXTRA_HINT}")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and its token ids; `templated` says whether the chat template made it."""

    text: str
    ids: list[int]
    templated: bool


_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], tuple[Any, Any, threading.Lock]] = {}


def _load(source: str, device: str) -> tuple[Any, Any, threading.Lock]:
    """Load (model, tokenizer, tokenizer lock) once per process for each (source, device).

    The lock travels with the shared tokenizer: Rust tokenizers raise "Already borrowed" when one
    instance is used from two threads at once.
    """
    key = (source, device)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as error:
            raise ModelNotFoundError(
                f"cannot load a causal LM from {source!r}: {error}. Give a folder holding config.json, the "
                "tokenizer files and the weights, or a hub id already in the local Hugging Face cache "
                "(nothing is downloaded at run time)"
            ) from error
        model.to(device)
        model.eval()
        _LOADED[key] = (model, tokenizer, threading.Lock())
        return _LOADED[key]


def model_source(path: str | Path) -> str:
    """An existing folder as an absolute path; a hub id (`org/name`) as it is; anything else is an error."""
    text = str(path)
    folder = Path(text).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelNotFoundError(f"model path {text!r} is a file: give the model's folder")
        return str(folder.resolve())
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return text
    raise ModelNotFoundError(
        f"model path {text!r} does not exist: give the folder of a Hugging Face model "
        "(config.json, tokenizer, weights) or a hub id already in the local cache"
    )


class HFLocalModel:
    """One causal LM on one device; `generate_batch` is what `Batcher` drives."""

    name = PROVIDER

    def __init__(self, path: str | Path, device: str | None = None) -> None:
        require_gpu_extra()
        import torch

        self.source = model_source(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model, self._tokenizer, self._tokenizer_lock = _load(self.source, self.device)
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        self.eos_token_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        self.pad_token_id: int = pad

    @property
    def dtype(self) -> torch.dtype:
        dtype: torch.dtype = self._model.dtype
        return dtype

    @property
    def context_window(self) -> int:
        config = self._model.config
        for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attribute, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    # -- prompts ---------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> tuple[str, bool]:
        """The prompt text, through the chat template when it takes this conversation, else role tags."""
        if getattr(self._tokenizer, "chat_template", None):
            from jinja2 import TemplateError

            schemas = [_tool_schema(tool) for tool in tools] or None
            for conversation in (_native(messages), _flattened(messages)):
                try:
                    text = self._apply_template(conversation, schemas)
                    if schemas and text == self._apply_template(conversation, None):
                        # The template ignored the tools: describe them and the call format ourselves.
                        text = self._apply_template(_with_tool_instructions(conversation, tools), None)
                except (TemplateError, TypeError, ValueError, KeyError):
                    continue
                return text, True
        return _role_tagged(messages, tools, self._tokenizer.bos_token), False

    def _apply_template(self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        text = self._tokenizer.apply_chat_template(
            conversation, tools=tools, add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def encode(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Prompt:
        with self._tokenizer_lock:
            text, templated = self.render(messages, tools)
            ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return Prompt(text=text, ids=list(ids), templated=templated)

    def new_token_budget(self, prompt_tokens: int, requested: int) -> int:
        """At most `requested` new tokens, and never past the context window."""
        room = self.context_window - prompt_tokens
        if room < 1:
            raise ContextTooLongError(
                f"the prompt is {prompt_tokens} tokens, the context window of {self.source} is "
                f"{self.context_window}: shorten the conversation or use a model with a longer context"
            )
        return max(1, min(requested, room))

    # -- generation ------------------------------------------------------------------------------

    def generate_batch(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        controls: Sequence[RowControl],
        temperature: float = 0.0,
    ) -> list[Generation]:
        """One left-padded batched `generate`; each row stops at its own limit, EOS or cancellation."""
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        if not prompts:
            return []
        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                input_ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
                attention[row, width - len(prompt):] = 1
        config = GenerationConfig(
            max_new_tokens=max(max_new_tokens),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_k=None,
            top_p=None,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_ids or None,
        )
        stop = _row_stop(width, list(max_new_tokens), list(controls))
        with torch.inference_mode():
            output = self._model.generate(
                input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([stop]),
            )
        rows: list[list[int]] = output[:, width:].tolist()
        return [self._cut(tokens, limit, control) for tokens, limit, control in zip(rows, max_new_tokens, controls,
                                                                                 strict=True)]

    def _cut(self, tokens: list[int], limit: int, control: RowControl) -> Generation:
        tokens = tokens[:limit]
        if control.cancelled:
            # generate pads a finished row to the batch's length: keep what it made before it stopped.
            tokens = tokens[: control.tokens]
        reason = FinishReason.length
        for index, token in enumerate(tokens):
            if token in self.eos_token_ids:
                tokens = tokens[: index + 1]
                reason = FinishReason.stop
                break
        if control.cancelled:
            reason = FinishReason.cancelled
        control.report(len(tokens))
        return Generation(tokens=tokens, finish_reason=reason)

    def decode(self, tokens: Sequence[int]) -> str:
        with self._tokenizer_lock:
            return str(self._tokenizer.decode(list(tokens), skip_special_tokens=True))

    def turn(self, model: str, prompt: Prompt, generation: Generation, duration_s: float) -> ModelTurn:
        """The assistant turn for one generation, with the real token counts."""
        content, calls = parse_reply(self.decode(generation.tokens))
        finish = "tool_calls" if calls else str(generation.finish_reason)
        return ModelTurn(
            message=Message(role="assistant", content=content, tool_calls=calls),
            usage=Usage(input_tokens=len(prompt.ids), output_tokens=len(generation.tokens)),
            model=model,
            provider=PROVIDER,
            finish_reason=finish,
            duration_s=duration_s,
        )

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """The Provider protocol, unbatched: one request, one generate, in a thread."""
        started = time.monotonic()
        prompt = self.encode(request.messages, request.tools)
        limit = self.new_token_budget(len(prompt.ids), request.max_tokens)
        control = RowControl()
        try:
            generations = await asyncio.to_thread(
                self.generate_batch, [prompt.ids], [limit], [control], request.temperature
            )
        except asyncio.CancelledError:
            control.cancelled = True
            raise
        return self.turn(request.model, prompt, generations[0], time.monotonic() - started)


def _row_stop(prompt_width: int, limits: list[int], controls: list[RowControl]) -> Any:
    """A StoppingCriteria that ends a row at its own limit or when its caller cancelled.

    generate stops once every row is finished, so a batch whose callers all went away stops at the
    next step. It also reports each row's progress (tokens so far) for heartbeats.
    """
    import torch
    from transformers import StoppingCriteria

    class RowStop(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            generated = input_ids.shape[1] - prompt_width
            done = []
            for limit, control in zip(limits, controls, strict=True):
                if not control.cancelled and generated <= limit:
                    control.report(generated)
                done.append(control.cancelled or generated >= limit)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    return RowStop()


# -- prompt formats ---------------------------------------------------------------------------------


def _tool_schema(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}


def _native(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages in the shape transformers' chat templates expect (OpenAI-like, arguments as objects)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ]
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
            if message.name:
                entry["name"] = message.name
        out.append(entry)
    return out


def _flattened(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Tool traffic as plain text, for templates that know only system/user/assistant and alternation."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        content = _as_text(message)
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    return out


def _as_text(message: Message) -> str:
    if message.role == "tool":
        return f"<tool_response name={json.dumps(message.name or '')}>\n{message.content}\n</tool_response>"
    calls = "".join(
        "\n<tool_call>" + json.dumps({"name": c.name, "arguments": c.arguments}) + "</tool_call>"
        for c in message.tool_calls
    )
    return message.content + calls


def _tool_instructions(tools: Sequence[ToolSpec]) -> str:
    lines = [
        "You can call tools. To call one, reply with one block per call and nothing else:",
        '<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>',
        "When you need no tool, reply with your final answer as plain text.",
        "Tools:",
    ]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Parameters (JSON Schema): "
                     f"{json.dumps(tool.parameters, sort_keys=True)}")
    return "\n".join(lines)


def _with_tool_instructions(conversation: list[dict[str, Any]], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    instructions = _tool_instructions(tools)
    if conversation and conversation[0]["role"] == "system":
        first = dict(conversation[0], content=f"{conversation[0]['content']}\n\n{instructions}")
        return [first, *conversation[1:]]
    return [{"role": "system", "content": instructions}, *conversation]


def _role_tagged(messages: Sequence[Message], tools: Sequence[ToolSpec], bos: str | None) -> str:
    """The format for tokenizers without a chat template: `<|role|>` lines, ending on the assistant's tag."""
    parts = [bos or ""]
    if tools:
        parts.append(f"<|system|>\n{_tool_instructions(tools)}\n")
    for message in messages:
        parts.append(f"<|{message.role}|>\n{_as_text(message)}\n")
    parts.append("<|assistant|>\n")
    return "".join(parts)


# -- reply parsing ----------------------------------------------------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


class _NotACall(ValueError):
    pass


def parse_reply(text: str) -> tuple[str, list[ToolCall]]:
    """Split generated text into (content, tool calls); see the module docstring for the forms."""
    tagged = _TAGGED.findall(text)
    if tagged:
        try:
            calls = [_call(json.loads(block), index) for index, block in enumerate(tagged)]
        except (json.JSONDecodeError, _NotACall):
            return text.strip(), []
        return _TAGGED.sub("", text).strip(), calls
    candidates = [(match.group(1), match.group(0)) for match in _FENCED.finditer(text)]
    candidates.append((text.strip(), text.strip()))
    for body, whole in candidates:
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("tool_calls"), list) or not data["tool_calls"]:
            continue
        try:
            calls = [_call(item, index) for index, item in enumerate(data["tool_calls"])]
        except _NotACall:
            continue
        return text.replace(whole, "", 1).strip(), calls
    return text.strip(), []


def _call(data: Any, index: int) -> ToolCall:
    if not isinstance(data, dict):
        raise _NotACall("a tool call must be a JSON object")
    if isinstance(data.get("function"), dict):  # the OpenAI shape, {"function": {"name", "arguments"}}
        data = data["function"]
    name = data.get("name")
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise _NotACall("arguments are not JSON") from error
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        raise _NotACall("a tool call needs a name and an arguments object")
    digest = hashlib.sha256(json.dumps([name, arguments], sort_keys=True, default=str).encode()).hexdigest()[:12]
    return ToolCall(id=f"call_{index}_{digest}", name=name, arguments=arguments)
