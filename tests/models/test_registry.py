"""The model registry: defaults, located configuration errors, lookups and provider construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.agents.anthropic import AnthropicProvider
from activities.agents.openai_compat import OpenAICompatProvider
from activities.agents.providers import provider_for
from activities.agents.registry import (
    ConfigError,
    ProviderKind,
    UnknownModelError,
    load_registry,
    parse_registry,
)
from contracts.agents import Role

GOOD = """\
telemetry:
  owned_by: someone_else
models:
  - name: local-coder
    provider: openai
    endpoint: http://127.0.0.1:8000/v1/
    model: Qwen/Qwen2.5-Coder-7B-Instruct
    context_window: 32768
    price: {input_per_mtok: 0.1, output_per_mtok: 0.2}
    roles: [coder]
  - name: claude
    provider: anthropic
    api_key_env: ANTHROPIC_API_KEY
    model: claude-sonnet-4-5
    roles: [reviewer, validator]
    timeout_s: 300
    max_retries: 5
  - name: tiny
    provider: hf-local
    roles: [coder]
  - name: claude-code
    provider: cli
    command: claude -p {prompt} --permission-mode acceptEdits
    env: {CLAUDE_CODE_MAX_TURNS: "30"}
"""


def test_a_full_configuration_loads_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEC2SHIP_TASK_QUEUE", "cpu-queue")
    registry = parse_registry(GOOD)
    assert registry.names() == ["local-coder", "claude", "tiny", "claude-code"]
    local = registry.get("local-coder")
    assert local.endpoint == "http://127.0.0.1:8000/v1"
    assert local.model == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert local.task_queue == "cpu-queue"
    assert local.price.output_per_mtok == 0.2
    claude = registry.get("claude")
    assert claude.endpoint == "https://api.anthropic.com"
    assert (claude.timeout_s, claude.max_retries, claude.api_key_env) == (300, 5, "ANTHROPIC_API_KEY")
    tiny = registry.get("tiny")
    assert (tiny.model, tiny.task_queue) == ("tiny", "gpu-inference")
    assert registry.get("claude-code").env == {"CLAUDE_CODE_MAX_TURNS": "30"}
    assert [e.name for e in registry.for_role(Role.coder)] == ["local-coder", "tiny"]
    assert [e.name for e in registry.for_role("validator")] == ["claude"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - name: a\n    provider: openai\n  - name: b\n    provider: opnai\n",
         "spec2ship.yaml:5: models.1.provider: unknown provider 'opnai'"),
        ("models:\n  - name: a\n    provider: openai\n    colour: red\n",
         "spec2ship.yaml:4: models.0.colour: unknown key 'colour'"),
        ("models:\n  - name: a\n    provider: openai\n    price:\n      input_per_mtok: -1\n",
         "spec2ship.yaml:5: models.0.price.input_per_mtok: Input should be greater than or equal to 0"),
        ("models:\n  - name: a\n    provider: openai\n    api_key_env: sk-live-abcdef\n",
         "spec2ship.yaml:4: models.0.api_key_env: must be the NAME of an environment variable"),
        ("models:\n  - name: a\n    provider: cli\n",
         "spec2ship.yaml:2: models.0: a `cli` model needs `command`"),
        ("models:\n  - name: a\n    provider: cli\n    command: aider --message {message}\n",
         "spec2ship.yaml:4: models.0.command: unknown placeholder(s) ['message']"),
        ("models:\n  - provider: openai\n", "spec2ship.yaml:2: models.0.name: required key is missing"),
        ("models:\n  - {name: a, provider: openai}\n  - {name: a, provider: anthropic}\n",
         "spec2ship.yaml:3: models.1.name: duplicate model name 'a'"),
        ("models:\n  - name: a\n   provider: openai\n", "spec2ship.yaml:3: invalid YAML"),
        ("models:\n  - name: a\n    provider: openai\n    roles: [coder, boss]\n",
         "spec2ship.yaml:4: models.0.roles.1: unknown role 'boss'"),
    ],
)
def test_errors_name_the_file_line_and_key_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_registry(text)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_an_absent_file_is_an_empty_registry_that_says_so(tmp_path: Path) -> None:
    registry = load_registry(tmp_path / "spec2ship.yaml")
    assert registry.models == []
    with pytest.raises(UnknownModelError) as caught:
        registry.get("gpt")
    assert "absent" in str(caught.value)


def test_the_path_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "elsewhere.yaml"
    config.write_text("models:\n  - name: x\n    provider: openai\n    model: gpt-4o\n")
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    registry = load_registry()
    assert registry.get("x").model == "gpt-4o"
    assert registry.source == str(config)
    config.write_text("models:\n  - name: x\n    provider: nope\n")
    with pytest.raises(ConfigError, match=r"elsewhere\.yaml:3: models\.0\.provider"):
        load_registry()


def test_provider_for_builds_http_providers_and_explains_the_rest() -> None:
    registry = parse_registry(GOOD)
    assert isinstance(provider_for(registry.get("local-coder")), OpenAICompatProvider)
    assert isinstance(provider_for(registry.get("claude")), AnthropicProvider)
    with pytest.raises(ConfigError, match="gpu-inference"):
        provider_for(registry.get("tiny"))
    with pytest.raises(ConfigError, match="CLI agent"):
        provider_for(registry.get("claude-code"))
    assert registry.get("claude-code").provider is ProviderKind.cli
