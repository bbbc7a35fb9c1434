"""The model Provider protocol and the messages that cross it.

Messages follow the OpenAI chat shape (system/user/assistant/tool with tool calls), which every
provider can be mapped to and from. A provider turns one request into one assistant turn; the agent
loop (workflows/agent_run.py) owns everything else.
"""

from __future__ import annotations

from typing import Protocol

from contracts.agents import ModelRequest, ModelTurn


class ProviderError(Exception):
    """A provider failed. `retryable` false for auth and bad-request errors, which retrying cannot fix."""

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None,
                 error_type: str = "provider_error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.error_type = error_type


class Provider(Protocol):
    """Turns one request into one assistant turn. Implementations: scripted, patch, OpenAI-compatible,
    Anthropic, CLI agents, local Hugging Face models."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelTurn: ...
