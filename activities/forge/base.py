"""The Forge protocol and the boundary models every forge adapter speaks.

A forge is addressed by a `RepoRef`; activities pick the adapter by `RepoRef.kind`, so workflow code
never knows which system it talks to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from contracts.forge import CommitStatus, MergeResult, PullRequest, SpecSource


class ForgeError(Exception):
    """A forge refused an operation; `retryable` says whether trying again can help, and
    `retry_after_s` how long the forge asked us to wait first (rate limits), when it said."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class BranchKept(ForgeError):
    """A forge will not delete a branch, and rightly: it is the default branch, or someone has it checked
    out, or the forge protects it. Deleting a finished PR's branch is tidying up, so callers report this
    (the message says why and what to do) instead of failing the run."""


class Forge(Protocol):
    """One repository on one forge. Every method is idempotent: activities retry them."""

    def read_spec(self, source: SpecSource) -> tuple[str, str]:
        """The spec's text and a name for it (file path or issue reference) for error messages."""
        ...

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        """A file at `ref` (default branch when None), or None when absent (e.g. the policy file)."""
        ...

    def default_branch(self) -> str: ...

    def branch_head(self, branch: str) -> str:
        """The commit `branch` points at now: the run pins its policy to it."""
        ...

    def prepare_workspace(self, branch: str, dest: Path) -> str:
        """Make `dest` a working copy on `branch` (created from the default branch, or resumed if it
        already exists on the forge). Returns the base commit sha."""
        ...

    def publish_branch(self, workspace: Path, branch: str, message: str) -> str:
        """Commit everything in `workspace` and make `branch` on the forge point at it; returns head sha."""
        ...

    def remove_workspace(self, dest: Path) -> None:
        """Drop the working copy at `dest` (the branch stays); nothing to do when it is already gone."""
        ...

    def find_pull_request(self, branch: str) -> PullRequest | None: ...

    def open_pull_request(self, branch: str, title: str, body: str, issue_number: int | None = None) -> PullRequest:
        """Open a PR for `branch`, or return the one already open for it; linked to the spec's issue if any."""
        ...

    def upsert_evidence(self, pr: PullRequest, markdown: str) -> None:
        """Keep ONE evidence comment per PR, edited in place."""
        ...

    def comment(self, pr: PullRequest | None, issue_number: int | None, body: str) -> None: ...

    def set_status(self, pr: PullRequest, state: CommitStatus, description: str) -> None: ...

    def set_labels(
        self, issue_number: int | None, pr: PullRequest | None, add: list[str], remove: list[str]
    ) -> None: ...

    def merge(self, pr: PullRequest, method: Literal["merge", "squash", "rebase"] = "merge") -> MergeResult:
        """Merge the validated head; the result carries the PR in its real state afterwards (`pr`)."""
        ...

    def close_pull_request(self, pr: PullRequest, note: str) -> PullRequest:
        """Close the PR unless it is closed or merged already; returns it in its real state afterwards."""
        ...

    def delete_branch(self, branch: str) -> None:
        """Delete `branch`; nothing to do when it is gone. Raises `BranchKept` for a branch that must stay."""
        ...

    def permission(self, user: str) -> str:
        """`admin`, `write`, `read` or `none`; only admin and write may steer a run."""
        ...


def read_spec_from_repository(forge: Forge, source: SpecSource, where: str) -> tuple[str, str] | None:
    """An inline or file spec, read the same way on every forge; None for an issue, which only some
    forges have. `where` names the repository in messages."""
    if source.kind == "inline":
        if source.text is None:
            raise ForgeError("an inline spec source carries no text; pass the spec text or use kind='file'")
        return source.text, source.path or "<inline>"
    if source.kind == "file":
        if not source.path:
            raise ForgeError("a file spec source needs a path relative to the repository root")
        text = forge.read_file(source.path)
        if text is None:
            raise ForgeError(
                f"no spec file {source.path} on branch {forge.default_branch()} of {where}; "
                "commit it to the default branch, or pass the spec inline"
            )
        return text, source.path
    return None
