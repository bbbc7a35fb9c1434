"""`scripted:FILE`: replays a YAML file of model turns, so the whole loop runs for real with the
model's choices fixed (the embedded default and the tests).

File format::

    turns:                       # used in every review round ...
      - content: "Reading the entry point."
        tool_calls:
          - {name: read_file, arguments: {path: greeter/app.py}}
        usage: {input_tokens: 900, output_tokens: 40}
      - content: "Done."
    rounds:                      # ... or one list of turns per review round (last one repeats)
      - [ ... ]
      - [ ... ]

The turn served is the number of assistant messages already in the conversation, so the provider
keeps no state between calls and a retried call gives the same answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.agents.base import ProviderError
from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, Usage


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=lambda: Usage(input_tokens=0, output_tokens=0))


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "scripted"
    turns: list[ScriptedTurn] = Field(default_factory=list)
    rounds: list[list[ScriptedTurn]] = Field(default_factory=list)

    def for_round(self, round_number: int) -> list[ScriptedTurn]:
        if self.rounds:
            return self.rounds[min(round_number, len(self.rounds) - 1)]
        return self.turns


def load_script(path: Path) -> Script:
    """Parse a script file; a broken file is a non-retryable error naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ProviderError(f"scripted model file not found: {path}", retryable=False, error_type="config") from error
    except yaml.YAMLError as error:
        raise ProviderError(f"{path}: not valid YAML: {error}", retryable=False, error_type="config") from error
    try:
        return Script.model_validate(data or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProviderError(f"{path}: {where}: {first['msg']}", retryable=False, error_type="config") from error


class ScriptedProvider:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = "scripted"

    async def complete(self, request: ModelRequest) -> ModelTurn:
        started = time.monotonic()
        script = load_script(self.path)
        turns = script.for_round(request.round)
        index = sum(1 for message in request.messages if message.role == "assistant")
        turn = turns[index] if index < len(turns) else ScriptedTurn(content="(the script has no more turns)")
        calls = [
            ToolCall(id=f"call_{request.round}_{index}_{n}", name=call.name, arguments=call.arguments)
            for n, call in enumerate(turn.tool_calls)
        ]
        return ModelTurn(
            message=Message(role="assistant", content=turn.content, tool_calls=calls),
            usage=turn.usage,
            model=f"{script.model}:{self.path.name}",
            provider=self.name,
            finish_reason="tool_calls" if calls else "stop",
            duration_s=round(time.monotonic() - started, 4),
        )
