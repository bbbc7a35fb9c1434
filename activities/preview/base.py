"""The PreviewBackend protocol: bring up the PR head somewhere, probe it, always take it down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field

from activities.evidence.models import PreviewEvidence
from specs.models import AcceptanceCriterion, PreviewConfig


class PreviewRequest(BaseModel):
    """Everything a backend needs to preview one PR head and run the deterministic criteria on it."""

    preview_id: str = Field(description="Unique per run and round; names the worktree / namespace.")
    repo_path: str = Field(description="Working copy (or repository) holding the PR head commit.")
    head_sha: str
    config: PreviewConfig | None
    criteria: list[AcceptanceCriterion] = Field(description="Only http and run criteria are executed here.")
    output_cap_bytes: int = 8000
    service: str | None = Field(default=None, description="The spec's service; names Kubernetes previews.")
    pr_number: int | None = Field(default=None, gt=0, description="The PR; one Kubernetes preview per PR head.")


# Called with a progress line while the backend waits; the activity passes `activity.heartbeat`, which is
# also how Temporal delivers cancellation to it.
Heartbeat = Callable[[str], object]


class PreviewBackend(Protocol):
    """One backend per kind of environment. `run` must tear down in every case, including
    cancellation; `reap` removes what a crashed predecessor left behind."""

    name: str

    async def run(self, request: PreviewRequest, heartbeat: Heartbeat) -> PreviewEvidence: ...

    def reap(self) -> list[str]:
        """Clean up leftovers of earlier processes; returns what it removed, for the log."""
        ...
