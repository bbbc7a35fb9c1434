"""Forge activities on the shared CPU queue: read the spec and policy, open the PR, publish evidence,
merge, comment, close. Each picks the adapter by `RepoRef.kind` and is idempotent under retry.

Adapters come from `activities.forge.registry.forge_for`, which shares one set of GitHub credentials
and one client per repository across all activities of the worker (no new token per call).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Protocol, runtime_checkable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import ConfigError, policy_defaults
from activities.forge.base import BranchKept, Forge, ForgeError
from activities.heartbeats import beating
from contracts.activities import ForgeCalls
from contracts.forge import (
    STATUS_LABELS,
    BranchCleanup,
    CloseChangeInput,
    CloseChangeResult,
    LabelIssueInput,
    LoadedSpec,
    LoadSpecInput,
    MergeInput,
    MergeResult,
    NotifyInput,
    OpenPullRequestInput,
    PolicyRef,
    PublishEvidenceInput,
    PullRequest,
    RepoRef,
    SpecSource,
)
from contracts.gate import POLICY_PATH
from rules.policy import PolicyError, parse_policy
from rules.redact import environment_secrets, redact_shapes, redact_strings
from specs.models import Spec
from specs.parser import SpecError, parse_issue_body, parse_spec


def forge_failure(error: ForgeError) -> ApplicationError:
    """Map a forge error onto Temporal's retries, waiting as long as the forge asked (rate limits)."""
    wait = getattr(error, "retry_after_s", None)
    return ApplicationError(
        str(error), type="ForgeError", non_retryable=not error.retryable,
        next_retry_delay=timedelta(seconds=wait) if wait else None,
    )


def _worker_secrets() -> list[str]:
    return environment_secrets(os.environ)


def _outgoing(text: str) -> str:
    """What leaves for the forge (PR bodies, comments, evidence): known secrets and credential shapes replaced."""
    return redact_shapes(text, _worker_secrets())


def _forge(repo: RepoRef) -> Forge:
    from activities.forge.registry import forge_for

    return forge_for(repo)


def set_status_label(forge: Forge, issue_number: int | None, pr: PullRequest | None, label: str) -> None:
    """Put the run's status label on the PR and the issue and take the other status labels off, so a
    change that ended never keeps `spec2ship:running` or `spec2ship:awaiting-human`."""
    others = [other for other in STATUS_LABELS.values() if other != label]
    forge.set_labels(issue_number, pr, [label], others)


def delete_finished_branch(forge: Forge, branch: str) -> BranchCleanup:
    """Delete a merged or closed PR's branch, or say why it stays.

    A branch the forge keeps on purpose (default branch, checked out by a person, protected) and any
    other refusal that retrying cannot change become a note: the change itself is done, and a leftover
    branch must not turn a merged run into a failed one. Errors worth retrying still raise, and the
    retry is safe: merging and closing again find the work done and only the deletion is repeated.
    """
    try:
        forge.delete_branch(branch)
    except BranchKept as kept:
        return BranchCleanup(branch=branch, deleted=False, note=str(kept))
    except ForgeError as error:
        if error.retryable:
            raise
        return BranchCleanup(branch=branch, deleted=False,
                             note=f"branch {branch} was kept: deleting it failed ({error}); delete it by hand")
    return BranchCleanup(branch=branch, deleted=True, note=f"branch {branch} was deleted")


class IssueLike(Protocol):
    title: str
    body: str


@runtime_checkable
class IssueReader(Protocol):
    """A forge with issues (GitHub): an issue's title is the default title of the spec in its body."""

    def read_issue(self, number: int) -> IssueLike: ...


def read_spec_text(forge: Forge, repo: RepoRef, source: SpecSource) -> tuple[str, str, str | None]:
    """The spec's text, its name for error messages, and the issue's title when the spec is an issue.

    One read of the issue gives both body and title; forges without issues answer through `read_spec`.
    """
    if source.kind == "issue" and source.issue_number is not None and isinstance(forge, IssueReader):
        issue = forge.read_issue(source.issue_number)
        return issue.body, f"{repo.location}#{source.issue_number}", issue.title
    text, name = forge.read_spec(source)
    return text, name, None


class ForgeActivities(ForgeCalls):
    @activity.defn(name="load_spec")
    @beating
    def load_spec(self, request: LoadSpecInput) -> LoadedSpec:
        """A spec that fails validation is a non-retryable `InvalidSpec` whose details list every
        problem with its line; the workflow answers it on the issue (or in the CLI)."""
        try:
            forge = _forge(request.repo)
            text, name, title = read_spec_text(forge, request.repo, request.source)
            # Pinned to one commit of the default branch: the change under review can never be its own policy.
            branch = forge.default_branch()
            base_sha = forge.branch_head(branch)
            policy_text = forge.read_file(POLICY_PATH, ref=base_sha)
        except ForgeError as error:
            raise forge_failure(error) from error
        try:
            parsed = parse_issue_body(text, title, name) if request.source.kind == "issue" else parse_spec(text, name)
            # The spec enters history here: a credential pasted into an issue stops at this line.
            spec = Spec.model_validate(redact_strings(parsed.model_dump(), _worker_secrets()))
        except SpecError as error:
            problems = [str(problem) for problem in error.problems]
            raise ApplicationError(
                "the spec is invalid:\n" + "\n".join(problems), problems, type="InvalidSpec", non_retryable=True
            ) from error
        try:
            defaults = policy_defaults()
        except ConfigError as error:  # the worker's setting, not the run's: retried until an operator fixes it
            raise ApplicationError(str(error), type="WorkerConfigError") from error
        try:
            policy = parse_policy(policy_text, defaults[1] if defaults else None,
                                  defaults_name=defaults[0] if defaults else "policy defaults")
        except PolicyError as error:
            raise ApplicationError(str(error), type="InvalidPolicy", non_retryable=True) from error
        return LoadedSpec(spec=spec, source_name=name, policy=policy,
                          policy_ref=PolicyRef(branch=branch, sha=base_sha, found=policy_text is not None,
                                               defaults=defaults[0] if defaults else None))

    @activity.defn(name="open_pull_request")
    @beating
    def open_pull_request(self, request: OpenPullRequestInput) -> PullRequest:
        try:
            return _forge(request.repo).open_pull_request(
                request.branch, _outgoing(request.title), _outgoing(request.body), issue_number=request.issue_number
            )
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="publish_evidence")
    @beating
    def publish_evidence(self, request: PublishEvidenceInput) -> None:
        try:
            forge = _forge(request.repo)
            forge.upsert_evidence(request.pr, _outgoing(request.markdown))
            forge.set_status(request.pr, request.status, _outgoing(request.status_description)[:140])
            if request.label:
                set_status_label(forge, request.issue_number, request.pr, request.label)
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="merge_pull_request")
    @beating
    def merge_pull_request(self, request: MergeInput) -> MergeResult:
        """Merge, then delete the branch when asked and the change landed (`result.branch` says how that went)."""
        try:
            forge = _forge(request.repo)
            result = forge.merge(request.pr, request.method)
            if request.delete_branch and result.landed:
                result.branch = delete_finished_branch(forge, request.pr.branch)
            return result
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="notify")
    @beating
    def notify(self, request: NotifyInput) -> None:
        try:
            _forge(request.repo).comment(request.pr, request.issue_number, _outgoing(request.body))
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="label_issue")
    def label_issue(self, request: LabelIssueInput) -> None:
        try:
            set_status_label(_forge(request.repo), request.issue_number, None, request.label)
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="close_change")
    @beating
    def close_change(self, request: CloseChangeInput) -> CloseChangeResult:
        """Close the PR, set the final status label, and delete the branch when asked."""
        try:
            forge = _forge(request.repo)
            result = CloseChangeResult()
            if request.pr is not None:
                result.pr = forge.close_pull_request(request.pr, _outgoing(request.note))
            if request.label and (result.pr is not None or request.issue_number is not None):
                set_status_label(forge, request.issue_number, result.pr, request.label)
            branch = request.branch or (request.pr.branch if request.pr is not None else "")
            if request.delete_branch and branch:
                result.branch = delete_finished_branch(forge, branch)
            return result
        except ForgeError as error:
            raise forge_failure(error) from error
