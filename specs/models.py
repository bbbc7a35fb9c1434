"""Pydantic models of spec version 1.

The models are strict (unknown fields are errors) so a typo in a spec is reported instead of being
silently ignored. Field names are exactly those users write in the front matter.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _Strict(BaseModel):
    # inf/nan are never a meaningful timeout, weight or budget; reject them instead of comparing oddly.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ChangeKind(StrEnum):
    """What sort of change the spec asks for; it steers the agents' prompts and the gate's risk."""

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
    if not _brackets_balanced(pattern):
        raise ValueError(f"glob {pattern!r} has an unbalanced '[' or ']'")
    parts = pattern.split("/")
    if any(part == "" for part in parts[:-1]):
        raise ValueError(f"glob {pattern!r} has an empty path segment ('//')")
    if any(part == ".." for part in parts):
        raise ValueError(f"glob {pattern!r} must not contain '..'")
    for part in parts:
        if "**" in part and part != "**":
            raise ValueError(f"glob {pattern!r}: '**' must be a whole path segment, as in 'src/**'")
    return pattern


def _brackets_balanced(pattern: str) -> bool:
    """True when every '[' is closed by a later ']' before the next '[' (and no stray ']')."""
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                return False
            depth = 1
        elif char == "]":
            if not depth:
                return False
            depth = 0
    return depth == 0


# Validated per item (not per list) so an error points at the offending entry, e.g. constraints.paths.2.
Glob = Annotated[
    str,
    Field(min_length=1, description="A repository-relative glob: '/' separators, '**' as a whole segment."),
    AfterValidator(validate_glob),
]


class Constraints(_Strict):
    """What the change may touch; enforced by the platform, not left to the agents' goodwill."""

    paths: list[Glob] = Field(default_factory=lambda: ["**"], description="Files the change may touch.")
    forbid: list[Glob] = Field(default_factory=list, description="Files never to touch; wins over paths.")
    max_changed_lines: int = Field(
        default=500, gt=0, strict=True, description="Upper bound on added plus removed lines in the diff."
    )
    tech: list[str] = Field(default_factory=list, description="Decisions handed to agents verbatim.")


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpCheck(_Strict):
    """An HTTP probe against the preview environment; passes when status and body match."""

    method: HttpMethod = Field(default="GET", description="HTTP method (case-insensitive).")
    path: str = Field(pattern=r"^/", description="Request path (with query) on the preview.")
    status: int = Field(default=200, ge=100, le=599, strict=True, description="Expected response status.")
    body_contains: str | None = Field(default=None, description="Text the response body must contain.")
    body: str | None = Field(default=None, description="Request body to send.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers to send.")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class AcceptanceCriterion(_Strict):
    """One acceptance check; exactly one of `http`, `run`, `judge`."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Unique within the spec; names the check in evidence reports.",
    )
    http: HttpCheck | None = Field(default=None, description="Probe the preview over HTTP.")
    run: str | None = Field(
        default=None, min_length=1, description="Shell command run in the workspace; passes on exit 0."
    )
    judge: str | None = Field(
        default=None, min_length=1, description="A statement a validation agent judges against the evidence."
    )
    timeout: float = Field(default=300, gt=0, le=24 * 3600, strict=True, description="Seconds.")
    key: bool = Field(default=True, strict=True, description="A failing key criterion fails the whole run.")
    weight: float = Field(default=1.0, ge=0, strict=True, description="Share in the run's score.")

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


# A container image reference (registry/path:tag) once '{sha}' is filled in. Deliberately narrower than
# Docker's grammar: lowercase repository, a tag, no digest (a digest cannot be known before CI builds it).
_IMAGE_REF = re.compile(
    r"^(?P<repository>(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"
)
_SAMPLE_SHA = "0" * 40


def image_for(image: str, sha: str) -> str:
    """`preview.image` with the head commit filled in."""
    return image.replace("{sha}", sha)


def _validate_image(value: str) -> str:
    if "{sha}" not in value:
        raise ValueError(
            f"preview.image {value!r} must contain '{{sha}}' in its tag, as in ghcr.io/acme/inventory:{{sha}}, "
            "so every head commit runs its own image"
        )
    tag = value.rsplit(":", 1)[-1] if ":" in value.rsplit("/", 1)[-1] else ""
    if "{sha}" not in tag:
        raise ValueError(f"preview.image {value!r}: put '{{sha}}' in the tag (after the last ':'), not in the path")
    if not _IMAGE_REF.match(image_for(value, _SAMPLE_SHA)):
        raise ValueError(
            f"preview.image {value!r} is not an image reference: write registry/path:tag in lowercase, "
            "as in ghcr.io/acme/inventory:{sha}"
        )
    return value


def _validate_manifests(value: str) -> str:
    if not value.strip():
        raise ValueError("preview.manifests must name a folder of the repository, as in deploy/preview")
    if value.startswith("/") or "\\" in value:
        raise ValueError(f"preview.manifests {value!r} must be a folder relative to the repository root, with '/'")
    if ".." in value.split("/"):
        raise ValueError(f"preview.manifests {value!r} must not contain '..'; it names a folder inside the repository")
    return value


class PreviewConfig(_Strict):
    """How to bring up an ephemeral environment of the change for HTTP checks.

    `start` serves the local backend; `manifests`, `image`, `ci_check`, `service` and `port` the Kubernetes
    (vCluster) backend, which deploys the image CI built for the head commit into a virtual cluster.
    """

    start: str | None = Field(default=None, description="Local backend command; {port} is filled in.")
    ready: str = Field(default="/", pattern=r"^/", description="Polled until it answers 2xx.")
    ready_timeout: float = Field(default=60, gt=0, le=3600, strict=True, description="Seconds.")
    manifests: Annotated[str, AfterValidator(_validate_manifests)] | None = Field(
        default=None,
        description="Kubernetes backend: a repository folder of manifests applied into the preview's virtual cluster.",
    )
    image: Annotated[str, AfterValidator(_validate_image)] | None = Field(
        default=None,
        description=(
            "Kubernetes backend: the PR's image with '{sha}' in its tag, as in ghcr.io/acme/inventory:{sha}; "
            "containers in the manifests that use this repository run it."
        ),
    )
    ci_check: str | None = Field(
        default=None,
        min_length=1,
        description="Kubernetes backend: the name of the CI check that builds `image`; the run waits for it to pass.",
    )
    service: str | None = Field(
        default=None,
        pattern=SERVICE_NAME.pattern,
        max_length=63,
        description="Kubernetes backend: the Service in the manifests that is probed (default: the spec's service).",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, strict=True, description="Kubernetes backend: the Service port (default: first)."
    )

    @field_validator("start")
    @classmethod
    def _port_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{port}" not in value:
            raise ValueError("preview.start must contain '{port}' so the preview listens where it is probed")
        return value

    @model_validator(mode="after")
    def _kubernetes_fields_fit(self) -> PreviewConfig:
        # ctx names the field, so a parser can point at preview.<field> rather than at preview.
        if self.ci_check is not None and self.image is None:
            raise PydanticCustomError(
                "preview_field_needs",
                "preview.ci_check names the check that builds preview.image; set preview.image too",
                {"field": "ci_check"},
            )
        if self.image is not None and self.manifests is None:
            raise PydanticCustomError(
                "preview_field_needs",
                "preview.image needs preview.manifests: the manifests say how the image runs",
                {"field": "image"},
            )
        return self


class Budget(_Strict):
    """A ceiling for this change, on top of the team's budget; the run stops when it is spent."""

    tokens: int | None = Field(default=None, gt=0, strict=True, description="Model tokens, in and out.")
    usd: float | None = Field(default=None, gt=0, strict=True, description="Cost in US dollars.")


class Spec(_Strict):
    """A spec: what one change must do, how it is checked, and what it may touch."""

    spec: Literal[1] = Field(description="Spec language version.")
    title: str = Field(min_length=1, description="One line; defaults to the body's first '# Heading'.")
    service: str = Field(
        pattern=SERVICE_NAME.pattern, description="The service changed: lowercase letters, digits and '-'."
    )
    team: str = Field(min_length=1, description="The team whose budget pays for the change.")
    kind: ChangeKind = Field(default=ChangeKind.feature, description="What sort of change this is.")
    autonomy: AutonomyLevel | None = Field(
        default=None, description="Cap on the service's autonomy level for this change (never raises it)."
    )
    constraints: Constraints = Field(default_factory=Constraints, description="What the change may touch.")
    acceptance: list[AcceptanceCriterion] = Field(
        min_length=1, description="The checks that decide whether the change does what the spec says."
    )
    preview: PreviewConfig | None = Field(default=None, description="Needed by http criteria.")
    budget: Budget | None = Field(default=None, description="A ceiling on what this change may spend.")
    body: str = Field(default="", description="The intent in prose (the Markdown after the front matter).")

    @field_validator("spec", mode="before")
    @classmethod
    def _no_bool_version(cls, value: object) -> object:
        # YAML `spec: true` would otherwise pass as 1, since True == 1 in Python.
        if isinstance(value, bool):
            raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
        return value

    @field_validator("acceptance")
    @classmethod
    def _unique_ids(cls, value: list[AcceptanceCriterion]) -> list[AcceptanceCriterion]:
        # A custom error type whose ctx carries the index, so a parser can point at acceptance.N.id.
        seen: set[str] = set()
        for index, criterion in enumerate(value):
            if criterion.id in seen:
                raise PydanticCustomError(
                    "duplicate_criterion_id", "duplicate criterion id '{id}'", {"id": criterion.id, "index": index}
                )
            seen.add(criterion.id)
        return value

    @model_validator(mode="after")
    def _preview_for_http(self) -> Spec:
        http = [index for index, c in enumerate(self.acceptance) if c.kind == "http"]
        if http and (self.preview is None or (self.preview.start is None and not self.preview.manifests)):
            # ctx names the first http criterion, so a parser can point at it when preview is absent.
            raise PydanticCustomError(
                "preview_required",
                "http criteria need a preview: set preview.start (or preview.manifests)",
                {"index": http[0]},
            )
        return self

    @property
    def slug(self) -> str:
        """A stable, readable name for branches and workflow ids."""
        words = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return (words or self.service)[:48].rstrip("-")
