"""The few fields of GitHub's webhook payloads that spec2ship reads, as lenient but bounded pydantic models.

Only handled event/action pairs are validated; everything else GitHub sends is ignored unread. Extra
fields are ignored (GitHub adds fields over time) and missing optional ones default. What is read is
held to GitHub's own rules (`contracts.github`): names and numbers that end up in a workflow id or a log
line, and a length cap on free text, which otherwise rides into workflow history. A payload that breaks
them fails validation, and the server answers 400 instead of starting anything.

The models validate straight from the raw bytes (`model_validate_json`): pydantic's JSON parser refuses
nesting deeper than 200 levels, invalid UTF-8, lone surrogates and numbers out of range with a
ValidationError, and builds no Python objects for the parts of a 25 MB payload it ignores.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.github import GitHubId, IssueNumber, Login, RepoFullName

# Caps on free text: GitHub's own limits, with room (issue and comment bodies: 65,536 characters).
Title = Annotated[str, StringConstraints(max_length=1024)]
Body = Annotated[str, StringConstraints(max_length=262_144)]
Short = Annotated[str, StringConstraints(max_length=256)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Ref = Annotated[str, StringConstraints(max_length=1024)]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{1,64}$")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Lenient):
    """What every delivery is read for first: its action, to route it (the rest is parsed, not kept)."""

    action: Short | None = None


class Account(_Lenient):
    login: Login
    type: Short = "User"


class Repository(_Lenient):
    full_name: RepoFullName


class Installation(_Lenient):
    id: GitHubId


class Label(_Lenient):
    name: Short


class Issue(_Lenient):
    number: IssueNumber
    title: Title = ""
    body: Body | None = None
    state: Short = "open"
    html_url: Url | None = None
    pull_request: dict[str, Any] | None = Field(default=None, description="Present when the issue is a PR.")

    @property
    def is_pull_request(self) -> bool:
        return self.pull_request is not None


class Comment(_Lenient):
    id: GitHubId
    body: Body | None = None
    user: Account
    html_url: Url | None = None


class Delivery(_Lenient):
    """What every repository event carries."""

    action: Short | None = None
    repository: Repository
    installation: Installation | None = None
    sender: Account

    @property
    def installation_id(self) -> int | None:
        return self.installation.id if self.installation else None


class IssuesEvent(Delivery):
    issue: Issue
    label: Label | None = None
    changes: dict[str, Any] | None = None


class IssueCommentEvent(Delivery):
    issue: Issue
    comment: Comment


class Head(_Lenient):
    ref: Ref
    sha: Sha


class PullRequestData(_Lenient):
    number: IssueNumber
    head: Head
    body: Body | None = None
    merged: bool | None = False
    html_url: Url | None = None


class PullRequestEvent(Delivery):
    pull_request: PullRequestData


class PullRequestLink(_Lenient):
    """An entry of `pull_requests` in check suites and workflow runs."""

    number: IssueNumber
    head: Head


class App(_Lenient):
    name: Short = ""


class CheckSuite(_Lenient):
    head_branch: Ref | None = None
    head_sha: Sha
    conclusion: Short | None = None
    url: Url | None = None
    app: App | None = None
    pull_requests: list[PullRequestLink] = Field(default_factory=list, max_length=100)


class CheckSuiteEvent(Delivery):
    check_suite: CheckSuite


class WorkflowRun(_Lenient):
    name: Short | None = None
    head_branch: Ref | None = None
    head_sha: Sha
    conclusion: Short | None = None
    html_url: Url | None = None
    pull_requests: list[PullRequestLink] = Field(default_factory=list, max_length=100)


class WorkflowRunEvent(Delivery):
    workflow_run: WorkflowRun
