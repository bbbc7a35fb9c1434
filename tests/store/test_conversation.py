"""A stored conversation: the model sees all of it, while the request and the answer carry references."""

from __future__ import annotations

from store.conftest import Backend

from activities.store.conversation import INLINE_OUTPUT_CHARS, converse, load, store_tool_output
from contracts.agents import Attribution, Message, ModelRequest, ModelTurn, Role, ToolCall, ToolSpec
from contracts.store import ConversationRef
from contracts.workspace import ToolResult, ToolStatus

SCOPE = "spec2ship/greeter/read-corpus-1/coder/0-1"
ATTRIBUTION = Attribution(team="t", service="greeter", spec="s", workflow_id="w", role=Role.coder)
TOOLS = [ToolSpec(name="read_file", description="read a file", parameters={"type": "object"})]


class Recorder:
    """A model that asks to read the next slice until told to stop, and remembers what it was shown."""

    def __init__(self) -> None:
        self.seen: list[ModelRequest] = []

    async def __call__(self, request: ModelRequest) -> ModelTurn:
        self.seen.append(request)
        step = sum(1 for message in request.messages if message.role == "assistant")
        call = ToolCall(id=f"call_{step}", name="read_file", arguments={"path": "corpus.txt", "slice": step})
        return ModelTurn(message=Message(role="assistant", content=f"step {step}", tool_calls=[call]), model="m")


async def test_each_call_carries_only_what_is_new_and_the_model_sees_everything(backend: Backend) -> None:
    model = Recorder()
    ref = ConversationRef(scope=SCOPE)
    pending = [Message(role="system", content="You are a coder."), Message(role="user", content="Read it.")]
    outputs = []
    for step in range(5):
        request = ModelRequest(model="m", messages=pending, tools=TOOLS if ref.manifest is None else [],
                               attribution=ATTRIBUTION, conversation=ref)
        turn = await converse(backend.store, request, model)
        assert turn.conversation is not None and turn.conversation.messages == ref.messages + len(pending) + 1
        ref = turn.conversation
        output = f"slice {step}: " + "x" * 12_000
        outputs.append(output)
        result = store_tool_output(backend.store, SCOPE, ToolResult(
            call_id=turn.message.tool_calls[0].id, tool="read_file", status=ToolStatus.ok, output=output))
        assert result.output == output[:200] and result.output_ref is not None  # history keeps a line and a ref
        pending = [Message(role="tool", tool_call_id=result.call_id, name="read_file", content=result.output,
                           content_ref=result.output_ref)]

    last = model.seen[-1]
    assert last.conversation is None and last.tools == TOOLS  # the provider gets a whole, ordinary request
    assert [m.role for m in last.messages] == ["system", "user"] + ["assistant", "tool"] * 4
    assert [m.content for m in last.messages if m.role == "tool"] == outputs[:4]  # full outputs, resolved
    assert all(m.content_ref is None for m in last.messages)

    stored = load(backend.store, ref)
    assert len(stored.messages) == ref.messages == 11 and stored.tools == TOOLS


async def test_a_request_without_a_conversation_passes_through_as_before(backend: Backend) -> None:
    model = Recorder()
    request = ModelRequest(model="m", messages=[Message(role="user", content="hi")], attribution=ATTRIBUTION)
    turn = await converse(backend.store, request, model)
    assert turn.conversation is None and model.seen == [request]
    assert backend.store.scopes() == []


def test_small_outputs_stay_inline(backend: Backend) -> None:
    small = ToolResult(call_id="c", tool="list_files", status=ToolStatus.ok, output="a.py\n" * 10)
    assert len(small.output) <= INLINE_OUTPUT_CHARS
    assert store_tool_output(backend.store, SCOPE, small) == small
    assert backend.store.scopes() == []
