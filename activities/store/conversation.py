"""An agent's conversation in the store: read it back for a model call, and extend it with the call's turn.

Stored as one blob per message plus a manifest (the list of message blobs and the blob of the tool specs
offered), so a step writes only its new messages and a new manifest. A tool message whose content is a
stored tool result keeps the reference; it is resolved only when the conversation is read for a model.
Both `call_model` implementations (the CPU worker's providers and the GPU worker's local models) go
through `converse`, so a model worker on another machine reads the same conversation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import BaseModel, Field, TypeAdapter

from activities.store.base import BlobStore
from contracts.agents import Message, ModelRequest, ModelTurn, ToolSpec
from contracts.store import BlobRef, ConversationRef
from contracts.workspace import ToolResult

_FETCHERS = 8
# Outputs up to this many characters stay inline: a reference and its round trip would cost about as much.
INLINE_OUTPUT_CHARS = 1024
PREVIEW_CHARS = 200
_TOOLS = TypeAdapter(list[ToolSpec])


class Manifest(BaseModel):
    """The stored shape of one conversation: what was offered and what was said, as blob references."""

    tools: BlobRef | None = None
    messages: list[BlobRef] = Field(default_factory=list)


@dataclass
class Conversation:
    manifest: Manifest
    messages: list[Message]
    tools: list[ToolSpec]


def load(store: BlobStore, ref: ConversationRef) -> Conversation:
    """The conversation `ref` names, every message's content resolved; empty when nothing is stored yet."""
    if ref.manifest is None:
        return Conversation(Manifest(), [], [])
    manifest = Manifest.model_validate_json(store.get(ref.manifest))
    with ThreadPoolExecutor(max_workers=_FETCHERS, thread_name_prefix="spec2ship-store") as pool:
        raw = list(pool.map(store.get, manifest.messages))
        messages = list(pool.map(lambda data: resolve(store, Message.model_validate_json(data)), raw))
    tools = _TOOLS.validate_json(store.get(manifest.tools)) if manifest.tools else []
    return Conversation(manifest, messages, tools)


def resolve(store: BlobStore, message: Message) -> Message:
    """The message as a model sees it: stored content read back in place of its first-line preview."""
    if message.content_ref is None:
        return message
    content = store.get(message.content_ref).decode("utf-8")
    return message.model_copy(update={"content": content, "content_ref": None})


def extend(store: BlobStore, ref: ConversationRef, conversation: Conversation, added: list[Message],
           tools: list[ToolSpec] | None) -> ConversationRef:
    """Store `added` after the conversation (and the tool specs, when new) and return the new reference."""
    manifest = conversation.manifest.model_copy(deep=True)
    if tools:
        manifest.tools = store.put(ref.scope, json.dumps(_TOOLS.dump_python(tools, mode="json")).encode())
    for message in added:
        manifest.messages.append(store.put(ref.scope, message.model_dump_json(exclude_defaults=True).encode()))
    stored = store.put(ref.scope, manifest.model_dump_json(exclude_defaults=True).encode())
    return ConversationRef(scope=ref.scope, manifest=stored, messages=len(manifest.messages))


async def converse(store: BlobStore, request: ModelRequest,
                   complete: Callable[[ModelRequest], Awaitable[ModelTurn]]) -> ModelTurn:
    """One model call on a stored conversation: read it, add the request's messages, call `complete` with
    the whole of it, store the added messages and the answer, and return the answer with the new reference.

    A request without a conversation (an AgentRun recorded before the store) is passed through unchanged.
    A retried call reads the same (unchanged) conversation again; its puts are idempotent.
    """
    ref = request.conversation
    if ref is None:
        return await complete(request)
    conversation = await asyncio.to_thread(load, store, ref)
    added = await asyncio.to_thread(lambda: [resolve(store, message) for message in request.messages])
    whole = request.model_copy(update={
        "messages": conversation.messages + added, "tools": request.tools or conversation.tools,
        "conversation": None})
    turn = await complete(whole)
    new_ref = await asyncio.to_thread(extend, store, ref, conversation, [*request.messages, turn.message],
                                      request.tools or None)
    return turn.model_copy(update={"conversation": new_ref})


def preview(text: str) -> str:
    """What history keeps of stored content: its first line, shortened (audit records show the same)."""
    return text.splitlines()[0][:PREVIEW_CHARS] if text else ""


def store_tool_output(store: BlobStore, scope: str, result: ToolResult) -> ToolResult:
    """The result with a large output moved to the store: history keeps the first line and the reference."""
    if len(result.output) <= INLINE_OUTPUT_CHARS:
        return result
    ref = store.put(scope, result.output.encode("utf-8"))
    return result.model_copy(update={"output": preview(result.output), "output_ref": ref})
