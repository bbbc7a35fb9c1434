"""The model registry: which models exist, where they run, what they cost, and who may use them.

It is read from the `models:` section of `spec2ship.yaml` (other sections belong to other parts of
spec2ship and are left alone here). Keys are never stored in the file: an entry names the environment
variable that holds its key, and the provider reads it at call time on the worker that makes the call.
"""

from __future__ import annotations

import os
import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from activities.config import DEFAULT_GPU_QUEUE, task_queue
from contracts.agents import Role

CONFIG_ENV = "SPEC2SHIP_CONFIG"
DEFAULT_CONFIG = "spec2ship.yaml"
CLI_PLACEHOLDERS = frozenset({"prompt_file", "prompt", "workspace"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the file, line and key path."""


class UnknownModelError(LookupError):
    """A model name that the registry does not hold."""


class ProviderKind(StrEnum):
    openai = "openai"
    anthropic = "anthropic"
    cli = "cli"
    hf_local = "hf-local"
    scripted = "scripted"


DEFAULT_BASE_URLS: dict[ProviderKind, str] = {
    ProviderKind.openai: "https://api.openai.com/v1",
    ProviderKind.anthropic: "https://api.anthropic.com",
}


class Price(BaseModel):
    """USD per million tokens, as providers publish their prices."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    provider: ProviderKind
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("base_url", "endpoint"),
        description="HTTP endpoint; `endpoint` is accepted as a synonym. Defaults to the vendor's public API.",
    )
    api_key_env: str | None = Field(default=None, description="Name of the environment variable holding the key.")
    model: str = Field(default="", description="The remote model id; defaults to `name`.")
    task_queue: str = Field(default="", description="Queue whose workers make the call; see the defaults below.")
    context_window: int | None = Field(default=None, gt=0)
    price: Price = Field(default_factory=Price)
    roles: list[Role] = Field(default_factory=list)
    timeout_s: float = Field(default=120.0, gt=0, description="Overall deadline of one call, retries included.")
    max_retries: int = Field(default=3, ge=0, le=20)
    command: str | None = Field(default=None, description="cli only: command template, e.g. `claude -p {prompt}`.")
    env: dict[str, str] = Field(default_factory=dict, description="cli only: extra environment for the command.")
    path: str | None = Field(
        default=None,
        description="hf-local only: the local folder of the model (config, tokenizer, weights); "
        "without it `model` is looked up as a folder or a hub id already in the local Hugging Face cache.",
    )
    script: str | None = Field(
        default=None,
        description="scripted only: the YAML script of model turns (activities.agents.scripted), absolute or "
        "relative to the configuration file's folder, so scripted agents run from configuration alone.",
    )
    _queue_configured: bool = PrivateAttr(default=False)
    _defaults_filled: bool = PrivateAttr(default=False)

    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself"
            )
        return value

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        except ValueError as err:
            raise ValueError(f"malformed command template: {err}") from err
        unknown = fields - CLI_PLACEHOLDERS
        if unknown:
            allowed = ", ".join("{" + p + "}" for p in sorted(CLI_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {allowed}")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> ModelEntry:
        if not self.model:
            self.model = self.name
        if not self._defaults_filled:  # pydantic re-runs this validator when an instance is passed on
            self._queue_configured = bool(self.task_queue)
            self._defaults_filled = True
        if not self.task_queue:
            self.task_queue = DEFAULT_GPU_QUEUE if self.provider is ProviderKind.hf_local else task_queue()
        if self.provider is ProviderKind.cli and not self.command:
            raise ValueError("a `cli` model needs `command` (a template such as `claude -p {prompt}`)")
        if self.provider is not ProviderKind.cli and (self.command or self.env):
            raise ValueError("`command` and `env` apply only to `cli` models")
        if self.provider is not ProviderKind.hf_local and self.path:
            raise ValueError("`path` applies only to `hf-local` models")
        if self.provider is ProviderKind.scripted and not self.script:
            raise ValueError("a `scripted` model needs `script` (the YAML file of its turns)")
        if self.provider is not ProviderKind.scripted and self.script:
            raise ValueError("`script` applies only to `scripted` models")
        return self

    @property
    def queue_configured(self) -> bool:
        """Whether the file named a task queue; if not, a remote model's calls run on the planner's CPU queue."""
        return self._queue_configured

    @property
    def endpoint(self) -> str:
        """The base URL without a trailing slash, the vendor's public API when none is configured."""
        url = self.base_url or DEFAULT_BASE_URLS.get(self.provider)
        if not url:
            raise ConfigError(f"model {self.name!r} ({self.provider}) has no base_url")
        return url.rstrip("/")


class _ModelsSection(BaseModel):
    model_config = ConfigDict(extra="allow")

    models: list[ModelEntry] = Field(default_factory=list)


class ModelRegistry(BaseModel):
    models: list[ModelEntry] = Field(default_factory=list)
    source: str | None = Field(default=None, description="The file it was read from, for error messages.")

    def get(self, name: str) -> ModelEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.models) or "none"
        where = self.source or "no configuration file"
        raise UnknownModelError(
            f"model {name!r} is not in the registry ({where}; models: {known}): add it under `models:`"
        )

    def for_role(self, role: Role | str) -> list[ModelEntry]:
        return [entry for entry in self.models if Role(role) in entry.roles]

    def names(self) -> list[str]:
        return [entry.name for entry in self.models]


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


def load_registry(path: Path | str | None = None) -> ModelRegistry:
    """Read the registry from `path` (default: $SPEC2SHIP_CONFIG or ./spec2ship.yaml).

    An absent file is an empty registry, so the embedded default (scripted models only) needs no file.
    """
    file = Path(path) if path is not None else config_path()
    if not file.exists():
        return ModelRegistry(source=f"{file} (absent)")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{file}: cannot read the configuration file: {err}") from err
    return parse_registry(text, source=str(file), base_dir=file.resolve().parent)


def parse_registry(text: str, *, source: str = DEFAULT_CONFIG, base_dir: Path | None = None) -> ModelRegistry:
    """Parse the `models:` section; relative `script` paths are taken from `base_dir` (the file's folder)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{source}:{at} invalid YAML: {problem}") from err
    if data is None:
        return ModelRegistry(source=source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping with a `models:` list")
    try:
        section = _ModelsSection.model_validate({"models": data.get("models") or []})
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(node, loc)
        raise ConfigError(f"{source}:{line}: {_dotted(loc)}: {_describe(first)}") from err
    seen: dict[str, int] = {}
    for index, entry in enumerate(section.models):
        if entry.name in seen:
            line = _line_of(node, ("models", index, "name"))
            raise ConfigError(
                f"{source}:{line}: models.{index}.name: duplicate model name {entry.name!r} "
                f"(first defined as models.{seen[entry.name]})"
            )
        seen[entry.name] = index
        if entry.script and base_dir is not None and not Path(entry.script).expanduser().is_absolute():
            entry.script = str(base_dir / entry.script)
    return ModelRegistry(models=section.models, source=source)


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(error: Any) -> str:
    names = [str(part) for part in error["loc"] if not isinstance(part, int)]
    field = names[-1] if names else "value"
    if error["loc"] and isinstance(error["loc"][-1], int):
        field = field.removesuffix("s")  # an item of `roles` is a role
    if error["type"] == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return f"unknown {field} {error['input']!r} (expected {expected})"
    if error["type"] == "extra_forbidden":
        return f"unknown key {field!r}"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node the error location reaches."""
    if node is None:
        return 1
    current: yaml.Node = node
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == str(part):
                    # An unknown key is best pointed at by its own line, a bad value by the value's.
                    child = value_node if not isinstance(value_node, yaml.ScalarNode) else key_node
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
            child = current.value[part]
        if child is None:
            break
        current = child
    return current.start_mark.line + 1
