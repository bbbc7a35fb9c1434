"""Agents and models at the boundary: roles, model choices, chat messages, tool calls, usage.

Messages follow the OpenAI chat shape (system/user/assistant/tool with tool calls), which every
provider maps to and from.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.store import BlobRef, ConversationRef


class Role(StrEnum):
    coder = "coder"
    reviewer = "reviewer"
    validator = "validator"


class AgentChoice(BaseModel):
    """Which model each role uses; None leaves the choice to the registry (or skips the role)."""

    coder: str | None = None
    reviewer: str | None = None
    judge: str | None = None


class ModelChoice(BaseModel):
    """A model picked for one role, where its calls run, and why it was picked."""

    role: Role
    model: str
    task_queue: str
    reason: str = ""
    provider: str = Field(default="", description="The registry entry's provider kind; `cli` runs as one activity.")
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0


class AgentPlan(BaseModel):
    coder: ModelChoice | None = None
    reviewer: ModelChoice | None = None
    validator: ModelChoice | None = None


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def digest(self) -> str:
        """A short fingerprint of name+arguments: audit records and loop detection use it."""
        canonical = json.dumps({"n": self.name, "a": self.arguments}, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    content_ref: BlobRef | None = Field(
        default=None, description="The content is in the store; `content` holds only its first line, for people.")


class ToolSpec(BaseModel):
    """A tool offered to the model: JSON Schema parameters, as in OpenAI's and Anthropic's APIs."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class Attribution(BaseModel):
    """Who a model or tool call is spent for: every span, metric and usage record carries it."""

    team: str
    service: str
    spec: str
    workflow_id: str
    role: Role
    kind: str = "feature"


class ModelRequest(BaseModel):
    model: str = Field(description="A registry model name, or `scripted:FILE` / `patch:FILE`.")
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    max_tokens: int = 4096
    temperature: float = 0.0
    round: int = Field(default=0, description="Review round, for scripted providers with per-round turns.")
    attribution: Attribution
    conversation: ConversationRef | None = Field(
        default=None, description="When set, the conversation so far is in the store: `messages` are only the ones "
        "to add after it, and empty `tools` means the stored ones. None: `messages` is the whole conversation.")


class ModelTurn(BaseModel):
    message: Message
    usage: Usage = Field(default_factory=Usage)
    model: str = Field(description="The model that answered (the response's model name).")
    provider: str = ""
    finish_reason: str = "stop"
    cost_usd: float = 0.0
    duration_s: float = 0.0
    conversation: ConversationRef | None = Field(
        default=None, description="The stored conversation including this turn, when the request came with one.")


class PlanAgentsInput(BaseModel):
    choice: AgentChoice
    service: str
    kind: str


BUILTIN_PREFIXES = ("scripted:", "patch:")


def is_builtin(model: str) -> bool:
    return model.startswith(BUILTIN_PREFIXES)
