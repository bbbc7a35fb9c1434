"""`patch:FILE`: a given unified diff is the coder's output.

Any change made by a person or another bot can so be sent through the factory's gates. The patch is
applied through the same governed `apply_patch` tool an agent would use, so scope rules still hold.
"""

from __future__ import annotations

from pathlib import Path

from activities.agents.base import ProviderError
from contracts.agents import Message, ModelRequest, ModelTurn, Role, ToolCall


class PatchProvider:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = "patch"

    async def complete(self, request: ModelRequest) -> ModelTurn:
        if request.attribution.role is not Role.coder:
            raise ProviderError(
                f"patch:{self.path} can only play the coder role, not {request.attribution.role}",
                retryable=False, error_type="config",
            )
        try:
            patch = self.path.read_text()
        except FileNotFoundError as error:
            raise ProviderError(f"patch file not found: {self.path}", retryable=False, error_type="config") from error
        assistant_turns = sum(1 for message in request.messages if message.role == "assistant")
        if assistant_turns == 0:
            message = Message(
                role="assistant",
                content=f"Applying {self.path.name}.",
                tool_calls=[ToolCall(id=f"patch_{request.round}", name="apply_patch", arguments={"patch": patch})],
            )
        else:
            result = next((m for m in reversed(request.messages) if m.role == "tool"), None)
            if result is not None and not result.content.startswith("patch"):
                # The governed apply_patch refused or failed: say so instead of claiming success.
                raise ProviderError(f"{self.path.name}: {result.content}", retryable=False, error_type="bad_patch")
            message = Message(role="assistant", content=f"Applied {self.path.name}.")
        return ModelTurn(message=message, model=f"patch:{self.path.name}", provider=self.name)
