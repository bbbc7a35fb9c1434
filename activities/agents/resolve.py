"""Turn a model reference into a Provider: `scripted:FILE`, `patch:FILE`, or a registry model name."""

from __future__ import annotations

from pathlib import Path

from activities.agents.base import Provider, ProviderError
from activities.agents.patch import PatchProvider
from activities.agents.scripted import ScriptedProvider


def resolve_provider(model: str) -> Provider:
    if model.startswith("scripted:"):
        return ScriptedProvider(Path(model.removeprefix("scripted:")))
    if model.startswith("patch:"):
        return PatchProvider(Path(model.removeprefix("patch:")))
    try:
        from activities.agents.registry import load_registry, provider_for
    except ImportError as error:  # pragma: no cover - the registry module ships with the package
        raise ProviderError(f"unknown model {model!r}", retryable=False, error_type="config") from error
    entry = load_registry().get(model)
    return provider_for(entry)
