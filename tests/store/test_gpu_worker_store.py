"""The GPU worker reads the conversation from the same store as the CPU workers: a model on another machine
is handed references, and sees every message (tool results included) in full.

The model here is a stand-in with the local model's interface (encode, budget, generate, turn) so that this
runs without torch; the GPU worker's activity, its batcher and the S3 store (moto's API) are the real ones.
The real model's own tests are in tests/gpu/.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from doubles.call_models_workflow import CallModels, CallModelsInput, CallModelsOutput
from doubles.s3_server import S3Server
from store.conftest import _s3
from temporalio.client import Client
from temporalio.worker import Worker

from activities.agents.batching import Batcher, FinishReason, Generation, RowControl
from activities.agents.hf_local import Prompt
from activities.store.conversation import store_tool_output
from contracts.agents import Attribution, Message, ModelRequest, ModelTurn, Role, ToolCall, ToolSpec, Usage
from contracts.store import ConversationRef
from contracts.workspace import ToolResult, ToolStatus
from workers.gpu_worker import GPUModelActivities

TOOLS = [ToolSpec(name="read_file", description="read a file", parameters={"type": "object"})]


class SeeingModel:
    """Remembers the messages and tools of every prompt it is asked to encode; asks to read a file."""

    source = "/models/seeing"

    def __init__(self) -> None:
        self.shown: list[tuple[list[Message], list[ToolSpec]]] = []

    def encode(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Prompt:
        self.shown.append((list(messages), list(tools)))
        return Prompt(text="", ids=[1] * len(messages), templated=True)

    def new_token_budget(self, prompt_tokens: int, requested: int) -> int:
        return requested

    def generate_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                       controls: Sequence[RowControl], temperature: float) -> list[Generation]:
        return [Generation(tokens=[7, 7], finish_reason=FinishReason.stop) for _ in prompts]

    def turn(self, model: str, prompt: Prompt, generation: Generation, duration_s: float) -> ModelTurn:
        call = ToolCall(id=f"call_{len(self.shown)}", name="read_file", arguments={"path": "corpus.txt"})
        return ModelTurn(message=Message(role="assistant", content="reading", tool_calls=[call]), model=model,
                         usage=Usage(input_tokens=len(prompt.ids), output_tokens=len(generation.tokens)))


async def test_the_gpu_worker_reads_and_extends_the_stored_conversation(
        moto: S3Server, dev_client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_side = _s3(moto)
    for name, value in cpu_side.env.items():  # the GPU machine's configuration names the same bucket
        monkeypatch.setenv(name, value)
    model = SeeingModel()
    # No store handed in: the GPU worker opens its own from its environment, as `spec2ship gpu-worker` does.
    activities = GPUModelActivities(model, Batcher(model, max_batch=4), names=["seeing"],  # type: ignore[arg-type]
                                    data_dir=tmp_path / "gpu-machine")
    scope = f"spec2ship/greeter/gpu-{uuid.uuid4().hex[:6]}/validator/0-1"
    attribution = Attribution(team="t", service="greeter", spec="s", workflow_id="w", role=Role.validator)
    gpu_queue = f"{task_queue}-gpu"

    async def call(request: ModelRequest) -> ModelTurn:
        output: CallModelsOutput = await dev_client.execute_workflow(
            CallModels.run, CallModelsInput(requests=[request], task_queue=gpu_queue),
            id=f"call-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        return output.turns[0]

    async with Worker(dev_client, task_queue=task_queue, workflows=[CallModels]), \
            Worker(dev_client, task_queue=gpu_queue, activities=[activities.call_model]):
        first = await call(ModelRequest(
            model="seeing", tools=TOOLS, attribution=attribution, conversation=ConversationRef(scope=scope),
            messages=[Message(role="system", content="You judge."), Message(role="user", content="Judge it.")]))
        assert first.conversation is not None and first.conversation.messages == 3

        # The tool ran on a CPU worker, which stored its output; the GPU worker gets only the reference.
        output = "a large result\n" + "y" * 12_000
        result = store_tool_output(cpu_side.store, scope, ToolResult(
            call_id=first.message.tool_calls[0].id, tool="read_file", status=ToolStatus.ok, output=output))
        second = await call(ModelRequest(model="seeing", attribution=attribution, conversation=first.conversation,
                                         messages=[Message(role="tool", tool_call_id=result.call_id, name="read_file",
                                                           content=result.output, content_ref=result.output_ref)]))

    assert second.conversation is not None and second.conversation.messages == 5
    messages, tools = model.shown[-1]
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[-1].content == output and tools == TOOLS

