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

from activities.forge.base import Forge, ForgeError
from contracts.activities import ForgeCalls
from contracts.forge import (
    STATUS_LABELS,
    CloseChangeInput,
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
            policy = parse_policy(policy_text)
        except PolicyError as error:
            raise ApplicationError(str(error), type="InvalidPolicy", non_retryable=True) from error
        return LoadedSpec(spec=spec, source_name=name, policy=policy,
                          policy_ref=PolicyRef(branch=branch, sha=base_sha, found=policy_text is not None))

    @activity.defn(name="open_pull_request")
    def open_pull_request(self, request: OpenPullRequestInput) -> PullRequest:
        try:
            return _forge(request.repo).open_pull_request(
                request.branch, _outgoing(request.title), _outgoing(request.body), issue_number=request.issue_number
            )
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="publish_evidence")
    def publish_evidence(self, request: PublishEvidenceInput) -> None:
        try:
            forge = _forge(request.repo)
            forge.upsert_evidence(request.pr, _outgoing(request.markdown))
            forge.set_status(request.pr, request.status, _outgoing(request.status_description)[:140])
            if request.label:
                others = [label for label in STATUS_LABELS.values() if label != request.label]
                forge.set_labels(request.issue_number, request.pr, [request.label], others)
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="merge_pull_request")
    def merge_pull_request(self, request: MergeInput) -> MergeResult:
        try:
            return _forge(request.repo).merge(request.pr, request.method)
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="notify")
    def notify(self, request: NotifyInput) -> None:
        try:
            _forge(request.repo).comment(request.pr, request.issue_number, _outgoing(request.body))
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="close_change")
    def close_change(self, request: CloseChangeInput) -> None:
        try:
            forge = _forge(request.repo)
            if request.pr is not None:
                forge.close_pull_request(request.pr, _outgoing(request.note))
            if request.delete_branch:
                forge.delete_branch(request.branch)
        except ForgeError as error:
            raise forge_failure(error) from error
