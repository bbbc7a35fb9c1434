"""What the provider tests share: the double as a fixture, a sleep that records backoff, a registry entry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from doubles.openai_server import ScriptedDouble

from activities.agents.registry import ModelEntry, Price, ProviderKind
from contracts.agents import ModelTurn

DoubleT = TypeVar("DoubleT", bound=ScriptedDouble)


def module_double(make: Callable[[], DoubleT]) -> Any:
    """A module-scoped fixture named `server`: the double `make` builds, running for the whole module."""

    def server() -> Iterator[DoubleT]:
        with make() as double:
            yield double

    return pytest.fixture(scope="module", name="server")(server)


class RecordingSleep:
    """Stands in for asyncio.sleep so backoff is asserted, not waited for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def model_entry(name: str, provider: ProviderKind, base_url: str, key_env: str, model: str, price: Price,
                **overrides: object) -> ModelEntry:
    """An entry with a 10 s timeout and 2 retries unless `overrides` say otherwise."""
    fields: dict[str, object] = {
        "name": name, "provider": provider, "base_url": base_url,
        "api_key_env": key_env, "model": model, "timeout_s": 10, "max_retries": 2,
        "price": price,
    }
    fields.update(overrides)
    return ModelEntry.model_validate(fields)


def turn_facts(turn: ModelTurn) -> tuple[object, ...]:
    """What a provider reports of a turn, for one comparison: (tool calls, finish reason,
    (input tokens, output tokens), answering model, provider, cost)."""
    return (turn.message.tool_calls, turn.finish_reason, (turn.usage.input_tokens, turn.usage.output_tokens),
            turn.model, turn.provider, turn.cost_usd)
