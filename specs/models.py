"""Pydantic models of spec version 1.

The models are strict (unknown fields are errors) so a typo in a spec is reported instead of being
silently ignored. Field names are exactly those users write in the front matter.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangeKind(StrEnum):
    feature = "feature"
    bugfix = "bugfix"
    chore = "chore"
    refactor = "refactor"
    dependency = "dependency"
    docs = "docs"


class AutonomyLevel(StrEnum):
    """How much the gate may do without a human (see DESIGN.md, autonomy levels)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"
    L5 = "L5"

    @property
    def rank(self) -> int:
        return int(self.value[1])

    @staticmethod
    def lowest(*levels: AutonomyLevel | None) -> AutonomyLevel:
        present = [level for level in levels if level is not None]
        return min(present, key=lambda level: level.rank)


def validate_glob(pattern: str) -> str:
    """Reject globs that can never match a repository path, so a typo is not a silent no-op."""
    if not pattern or not pattern.strip():
        raise ValueError("glob must not be empty")
    if pattern.startswith("/"):
        raise ValueError(f"glob {pattern!r} must be relative to the repository root (no leading '/')")
    if "\\" in pattern:
        raise ValueError(f"glob {pattern!r} must use '/' as separator")
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"glob {pattern!r} has an unbalanced '[' or ']'")
    parts = pattern.split("/")
    if any(part == ".." for part in parts):
        raise ValueError(f"glob {pattern!r} must not contain '..'")
    for part in parts:
        if "**" in part and part != "**":
            raise ValueError(f"glob {pattern!r}: '**' must be a whole path segment, as in 'src/**'")
    return pattern


Glob = Annotated[str, Field(min_length=1)]


class Constraints(_Strict):
    paths: list[Glob] = Field(default_factory=lambda: ["**"], description="Files the change may touch.")
    forbid: list[Glob] = Field(default_factory=list, description="Files never to touch; wins over paths.")
    max_changed_lines: int = Field(default=500, gt=0)
    tech: list[str] = Field(default_factory=list, description="Decisions handed to agents verbatim.")

    @field_validator("paths", "forbid")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [validate_glob(pattern) for pattern in value]


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpCheck(_Strict):
    method: HttpMethod = "GET"
    path: str = Field(pattern=r"^/", description="Request path (with query) on the preview.")
    status: int = Field(default=200, ge=100, le=599)
    body_contains: str | None = None
    body: str | None = Field(default=None, description="Request body to send.")
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class AcceptanceCriterion(_Strict):
    """One acceptance check; exactly one of `http`, `run`, `judge`."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    http: HttpCheck | None = None
    run: str | None = Field(default=None, min_length=1)
    judge: str | None = Field(default=None, min_length=1)
    timeout: float = Field(default=300, gt=0, le=24 * 3600, description="Seconds.")
    key: bool = Field(default=True, description="A failing key criterion fails the whole run.")
    weight: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> AcceptanceCriterion:
        kinds = [name for name in ("http", "run", "judge") if getattr(self, name) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"a criterion needs exactly one of http, run, judge (found: {found})")
        return self

    @property
    def kind(self) -> Literal["http", "run", "judge"]:
        if self.http is not None:
            return "http"
        return "run" if self.run is not None else "judge"


class PreviewConfig(_Strict):
    start: str | None = Field(default=None, description="Local backend command; {port} is filled in.")
    ready: str = Field(default="/", pattern=r"^/", description="Polled until it answers 2xx.")
    ready_timeout: float = Field(default=60, gt=0, le=3600)
    manifests: str | None = Field(default=None, description="Kubernetes backend manifests folder.")

    @field_validator("start")
    @classmethod
    def _port_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{port}" not in value:
            raise ValueError("preview.start must contain '{port}' so the preview listens where it is probed")
        return value


class Budget(_Strict):
    tokens: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0)


class Spec(_Strict):
    spec: Literal[1] = Field(description="Spec language version.")
    title: str = Field(min_length=1)
    service: str = Field(pattern=SERVICE_NAME.pattern)
    team: str = Field(min_length=1)
    kind: ChangeKind = ChangeKind.feature
    autonomy: AutonomyLevel | None = None
    constraints: Constraints = Field(default_factory=Constraints)
    acceptance: list[AcceptanceCriterion] = Field(min_length=1)
    preview: PreviewConfig | None = None
    budget: Budget | None = None
    body: str = Field(default="", description="The intent in prose (the Markdown after the front matter).")

    @field_validator("acceptance")
    @classmethod
    def _unique_ids(cls, value: list[AcceptanceCriterion]) -> list[AcceptanceCriterion]:
        seen: set[str] = set()
        for criterion in value:
            if criterion.id in seen:
                raise ValueError(f"duplicate criterion id {criterion.id!r}")
            seen.add(criterion.id)
        return value

    @model_validator(mode="after")
    def _preview_for_http(self) -> Spec:
        needs_preview = any(c.kind == "http" for c in self.acceptance)
        if needs_preview and (self.preview is None or (self.preview.start is None and not self.preview.manifests)):
            raise ValueError("http criteria need a preview: set preview.start (or preview.manifests)")
        return self

    @property
    def slug(self) -> str:
        """A stable, readable name for branches and workflow ids."""
        words = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return (words or self.service)[:48].rstrip("-")
