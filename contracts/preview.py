"""What a preview backend is asked to do."""

from __future__ import annotations

from pydantic import BaseModel, Field

from specs.models import AcceptanceCriterion, PreviewConfig


class PreviewRequest(BaseModel):
    """Everything a backend needs to preview one PR head and run the deterministic criteria on it."""

    preview_id: str = Field(description="Unique per run and round; names the worktree / namespace.")
    repo_path: str = Field(description="Working copy (or repository) holding the PR head commit.")
    head_sha: str
    config: PreviewConfig | None
    criteria: list[AcceptanceCriterion] = Field(description="Only http and run criteria are executed here.")
    output_cap_bytes: int = 8000
