"""The few fields of GitHub's webhook payloads that spec2ship reads, as lenient pydantic models.

Only handled event/action pairs are validated; everything else GitHub sends is ignored unread. Extra
fields are ignored (GitHub adds fields over time), missing optional ones default, and a payload that
lacks a field we need fails validation, which the server answers with 400 instead of crashing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Account(_Lenient):
    login: str
    type: str = "User"


class Repository(_Lenient):
    full_name: str


class Installation(_Lenient):
    id: int


class Label(_Lenient):
    name: str


class Issue(_Lenient):
    number: int
    title: str = ""
    body: str | None = None
    state: str = "open"
    html_url: str | None = None
    pull_request: dict[str, Any] | None = Field(default=None, description="Present when the issue is a PR.")

    @property
    def is_pull_request(self) -> bool:
        return self.pull_request is not None


class Comment(_Lenient):
    id: int
    body: str | None = None
    user: Account
    html_url: str | None = None


class Delivery(_Lenient):
    """What every repository event carries."""

    action: str | None = None
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


class Ref(_Lenient):
    ref: str
    sha: str


class PullRequestData(_Lenient):
    number: int
    head: Ref
    body: str | None = None
    merged: bool | None = False
    html_url: str | None = None


class PullRequestEvent(Delivery):
    pull_request: PullRequestData


class PullRequestLink(_Lenient):
    """An entry of `pull_requests` in check suites and workflow runs."""

    number: int
    head: Ref


class App(_Lenient):
    name: str = ""


class CheckSuite(_Lenient):
    head_branch: str | None = None
    head_sha: str
    conclusion: str | None = None
    url: str | None = None
    app: App | None = None
    pull_requests: list[PullRequestLink] = Field(default_factory=list)


class CheckSuiteEvent(Delivery):
    check_suite: CheckSuite


class WorkflowRun(_Lenient):
    name: str | None = None
    head_branch: str | None = None
    head_sha: str
    conclusion: str | None = None
    html_url: str | None = None
    pull_requests: list[PullRequestLink] = Field(default_factory=list)


class WorkflowRunEvent(Delivery):
    workflow_run: WorkflowRun
