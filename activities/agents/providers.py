"""Turning a model reference into a Provider: `scripted:FILE`, `patch:FILE`, or a registry entry.

The one place to touch when adding a provider: its module implements `activities.agents.base.Provider`,
`provider_for` builds it from its registry entry.
"""

from __future__ import annotations

from pathlib import Path

from activities.agents.anthropic import AnthropicProvider
from activities.agents.base import Provider
from activities.agents.openai_compat import OpenAICompatProvider
from activities.agents.patch import PatchProvider
from activities.agents.registry import ConfigError, ModelEntry, ProviderKind, load_registry
from activities.agents.scripted import ScriptedProvider


def resolve_provider(model: str) -> Provider:
    if model.startswith("scripted:"):
        return ScriptedProvider(Path(model.removeprefix("scripted:")))
    if model.startswith("patch:"):
        return PatchProvider(Path(model.removeprefix("patch:")))
    return provider_for(load_registry().get(model))


def provider_for(entry: ModelEntry) -> Provider:
    """Build the provider for an entry that a CPU worker calls: HTTP APIs and scripted files.

    CLI agents and local models run elsewhere and are refused with the reason.
    """
    if entry.provider is ProviderKind.openai:
        return OpenAICompatProvider(entry)
    if entry.provider is ProviderKind.anthropic:
        return AnthropicProvider(entry)
    if entry.provider is ProviderKind.scripted and entry.script:
        return ScriptedProvider(Path(entry.script).expanduser())
    reasons = {
        ProviderKind.cli: "it runs as one CLI agent activity in the workspace (activities.agents.cli_agent.CliAgent)",
        ProviderKind.hf_local: f"it is served by the GPU worker on task queue {entry.task_queue!r}",
        ProviderKind.scripted: "it has no `script` file",
    }
    raise ConfigError(f"model {entry.name!r}: no HTTP provider for kind {entry.provider!r}: {reasons[entry.provider]}")
