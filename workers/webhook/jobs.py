"""What a verified delivery asks spec2ship to do, as it is written to the spool, and what came of it.

Ingress turns a delivery into one `Job` without any I/O (`triage.py`); the drain carries it out against
Temporal and GitHub (`execute.py`). A job holds only what carrying it out needs (never the payload), so
the spool stays small, and it is a pydantic model so that a spool written by one version of the webhook
is read back by the next: fields are only ever added, with defaults.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.forge import RepoRef
from contracts.github import IssueNumber, Login
from contracts.runs import ForgeEvent
from workers.webhook.commands import Command
from workers.webhook.dedup import issue_run_id


class Reply(BaseModel):
    """A comment to post on an issue or PR thread."""

    repo: RepoRef
    issue_number: IssueNumber
    body: str


class StartRun(BaseModel):
    """The factory label on an open issue: check the issue's spec, then start (or join) the issue's run."""

    kind: Literal["start"] = "start"
    repo: RepoRef
    issue_number: IssueNumber
    title: str = ""
    body: str | None = None
    requested_by: Login
    label: str = Field(description="The factory label, named in the reply to a bad spec.")


class SignalRun(BaseModel):
    """Tell the issue's open run what GitHub saw (spec edited, PR closed, CI finished)."""

    kind: Literal["signal"] = "signal"
    repo: RepoRef
    issue_number: IssueNumber
    signal: Literal["spec_changed", "pr_closed", "ci_completed"]
    event: ForgeEvent


class SteerRun(BaseModel):
    """A `/spec2ship` command: check the commenter may write, then send the update to the issue's run."""

    kind: Literal["steer"] = "steer"
    repo: RepoRef
    thread: IssueNumber = Field(description="The issue or PR the comment was written on; replies go there.")
    issue_number: IssueNumber = Field(description="The issue whose run the command steers.")
    commenter: Login
    command: Command


class PostReply(BaseModel):
    """Only a reply: a refusal decided at ingress, or one a job's outcome asked for."""

    kind: Literal["reply"] = "reply"
    reply: Reply


AnyJob = StartRun | SignalRun | SteerRun | PostReply
Job = Annotated[AnyJob, Field(discriminator="kind")]


class SpooledJob(BaseModel):
    """The envelope the spool stores a job in (a discriminated union needs a field to live in)."""

    job: Job


def target(job: AnyJob) -> str | None:
    """The workflow id a job acts on; jobs for one run are carried out in the order they arrived."""
    if isinstance(job, PostReply):
        return None
    return issue_run_id(job.repo.location, job.issue_number)


class Disposition(StrEnum):
    acted = "acted"  # a run was started, signalled or updated
    refused = "refused"  # addressed to spec2ship but not acted on; the reply says why
    ignored = "ignored"  # not for spec2ship, or nothing to act on


class Outcome(BaseModel):
    disposition: Disposition
    reason: str
    workflow_id: str | None = None
    run_id: str | None = None
    replies: list[Reply] = Field(default_factory=list)


def acted(reason: str, workflow_id: str | None, run_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.acted, reason=reason, workflow_id=workflow_id, run_id=run_id)


def ignored(reason: str, workflow_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.ignored, reason=reason, workflow_id=workflow_id)


def refused(reason: str, reply: Reply, workflow_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.refused, reason=reason, workflow_id=workflow_id, replies=[reply])
