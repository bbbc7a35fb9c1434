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
    # Local forge: the base branch is checked out with uncommitted changes the merge would overwrite.
    # Nothing moved; once a person commits or stashes them, the same merge can be tried again.
    checkout_blocked = "checkout_blocked"


class BranchCleanup(BaseModel):
    """What became of a pull request's branch once the PR merged or closed."""

    branch: str
    deleted: bool
    note: str = Field(default="", description="What happened, or why the branch stays and what to do about it.")


class MergeResult(BaseModel):
    """One merge attempt. Fields after `message` were added later: their defaults keep results recorded in
    older histories decodable."""

    outcome: MergeOutcome
    merge_sha: str | None = None
    message: str = ""
    pr: PullRequest | None = Field(
        default=None, description="The PR as the forge holds it after the attempt: its real state (merged, closed, "
        "open). None in results recorded before this field existed.")
    blocking_paths: list[str] = Field(
        default_factory=list, description="checkout_blocked: the files whose uncommitted changes are in the way.")
    branch: BranchCleanup | None = Field(
        default=None, description="The PR branch after a merge, when MergeInput.delete_branch asked to delete it.")

    @property
    def landed(self) -> bool:
        return self.outcome in {MergeOutcome.merged, MergeOutcome.already_merged}


class CommitStatus(StrEnum):
    pending = "pending"
    success = "success"
    failure = "failure"
    error = "error"


# The run's state as a label on the PR and the spec's issue. They are exclusive: setting one removes the others.
STATUS_LABELS = {
    "running": "spec2ship:running",
    "awaiting_human": "spec2ship:awaiting-human",
    "merged": "spec2ship:merged",
    "rejected": "spec2ship:rejected",
    "failed": "spec2ship:failed",
    "cancelled": "spec2ship:cancelled",
    "commented": "spec2ship:commented",
}


class LoadSpecInput(BaseModel):
    repo: RepoRef
    source: SpecSource


class PolicyRef(BaseModel):
    """Where the run's policy came from: the default branch as it was when the run started."""

    branch: str
    sha: str
    found: bool = Field(description="False when the repository has no policy file (the org defaults apply).")
    defaults: str | None = Field(default=None, description="The platform's policy defaults file it was laid over.")

    def describe(self) -> str:
        where = f"`{POLICY_PATH}` on `{self.branch}` at `{self.sha[:12]}`" if self.found else (
            f"the org defaults (no `{POLICY_PATH}` on `{self.branch}` at `{self.sha[:12]}`)")
        if self.defaults:
            where += f" over the platform's defaults (`{self.defaults}`)"
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
    delete_branch: bool = Field(
        default=False, description="Delete the PR's branch once it merged (the policy's `delete_branches`). False "
        "for inputs recorded before the field existed, which never asked for it.")


class NotifyInput(BaseModel):
    repo: RepoRef
    body: str
    pr: PullRequest | None = None
    issue_number: int | None = None


class LabelIssueInput(BaseModel):
    """The status label a run that ended without a PR leaves on its issue: proof, after Temporal has
    forgotten the run, that the issue had one (the factory's sweep starts no second run)."""

    repo: RepoRef
    issue_number: int
    label: str


class CloseChangeInput(BaseModel):
    """End a change that will not merge: close its PR (kept for the record, its commits too) and delete
    its branch when asked: always when no PR was opened, so nothing half-made is left behind, and after
    a PR when the policy's `delete_branches` says so."""

    repo: RepoRef
    branch: str
    pr: PullRequest | None = None
    note: str
    delete_branch: bool = False
    label: str | None = Field(
        default=None, description="The status label the change ends with (e.g. spec2ship:rejected), set on the PR "
        "and the spec's issue in place of the other status labels; None leaves labels alone.")
    issue_number: int | None = Field(default=None, description="The spec's issue, labelled with `label` too.")


class CloseChangeResult(BaseModel):
    """What closing left behind: the PR in its real state and what became of its branch. Histories recorded
    before this result existed hold no value (None) for close_change."""

    pr: PullRequest | None = None
    branch: BranchCleanup | None = None
