"""Forge boundary models: repositories, spec sources, pull requests, merges, and the forge
activities' inputs and outputs. The Forge protocol itself is the adapters' (activities/forge/base.py).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from contracts.gate import POLICY_PATH, Policy
from specs.models import Spec


class ForgeKind(StrEnum):
    local = "local"
    github = "github"


class RepoRef(BaseModel):
    """Which repository: a path on disk for `local`, `owner/name` for `github`."""

    kind: ForgeKind = ForgeKind.local
    location: str
    default_branch: str | None = None
    installation_id: int | None = Field(default=None, description="GitHub App installation, if any.")

    @property
    def display(self) -> str:
        return Path(self.location).name if self.kind is ForgeKind.local else self.location


class SpecSource(BaseModel):
    """Where a spec is read from: inline text (the CLI read the file), a file in the repo, or an issue."""

    kind: Literal["inline", "file", "issue"] = "inline"
    text: str | None = None
    path: str | None = None
    issue_number: int | None = None


class PullRequestState(StrEnum):
    open = "open"
    merged = "merged"
    closed = "closed"


class PullRequest(BaseModel):
    number: int
    branch: str
    base: str
    head_sha: str
    url: str
    state: PullRequestState = PullRequestState.open
    title: str = ""


class MergeOutcome(StrEnum):
    merged = "merged"
    already_merged = "already_merged"
    not_mergeable = "not_mergeable"  # conflicts, protections (GitHub 405)
    head_changed = "head_changed"  # the head moved since it was validated (GitHub 409)
    closed = "closed"


class MergeResult(BaseModel):
    outcome: MergeOutcome
    merge_sha: str | None = None
    message: str = ""


class CommitStatus(StrEnum):
    pending = "pending"
    success = "success"
    failure = "failure"
    error = "error"


STATUS_LABELS = {
    "running": "spec2ship:running",
    "awaiting_human": "spec2ship:awaiting-human",
    "merged": "spec2ship:merged",
    "rejected": "spec2ship:rejected",
}


class LoadSpecInput(BaseModel):
    repo: RepoRef
    source: SpecSource


class PolicyRef(BaseModel):
    """Where the run's policy came from: the default branch as it was when the run started."""

    branch: str
    sha: str
    found: bool = Field(description="False when the repository has no policy file (the org defaults apply).")

    def describe(self) -> str:
        where = f"`{POLICY_PATH}` on `{self.branch}` at `{self.sha[:12]}`" if self.found else (
            f"the org defaults (no `{POLICY_PATH}` on `{self.branch}` at `{self.sha[:12]}`)")
        return (f"Policy, trust bar and owners: {where}, read when the run started; a change to them in this "
                "PR takes effect only after a person merges it.")


class LoadedSpec(BaseModel):
    spec: Spec
    source_name: str
    policy: Policy
    policy_ref: PolicyRef | None = None


class OpenPullRequestInput(BaseModel):
    repo: RepoRef
    branch: str
    title: str
    body: str
    issue_number: int | None = None


class PublishEvidenceInput(BaseModel):
    repo: RepoRef
    pr: PullRequest
    markdown: str
    status: CommitStatus
    status_description: str
    label: str | None = None
    issue_number: int | None = None


class MergeInput(BaseModel):
    repo: RepoRef
    pr: PullRequest
    method: Literal["merge", "squash", "rebase"] = "merge"


class NotifyInput(BaseModel):
    repo: RepoRef
    body: str
    pr: PullRequest | None = None
    issue_number: int | None = None


class CloseChangeInput(BaseModel):
    """End a change that will not merge: close its PR (kept for the record) or, when no PR was
    opened, delete the half-made branch so nothing is left behind."""

    repo: RepoRef
    branch: str
    pr: PullRequest | None = None
    note: str
    delete_branch: bool = False
