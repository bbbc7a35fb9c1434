"""Inputs and the report of a factory run (the `FactoryRun` workflow and its two activities)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.github import RepoFullName

DEFAULT_LABEL = "spec2ship"
DEFAULT_MAX_IN_FLIGHT = 2

# GitHub's owner and repository name rules; keeps visibility queries and workflow ids built from it well formed.
RepoName = RepoFullName


class FactoryRunInput(BaseModel):
    repos: list[RepoName] = Field(min_length=1, description="GitHub repositories, as owner/name.")
    label: str = Field(default=DEFAULT_LABEL, min_length=1, description="Open issues with it are ready.")
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, description="Open runs allowed per repository.")
    task_queue: str | None = Field(default=None, description="Where runs start; None: the worker's own queue.")


class ReadyIssue(BaseModel):
    repo: RepoName
    number: int = Field(gt=0)
    title: str = ""
    installation_id: int | None = Field(default=None, description="The GitHub App installation on the repo.")
    status_label: str | None = Field(
        default=None,
        description="A spec2ship status label on the issue (`spec2ship:rejected`, ...): a run had the issue, "
        "even when Temporal no longer holds it (past the namespace's retention).",
    )


class RepoProblem(BaseModel):
    """A repository the factory could not look at (not found, no access); the others still run."""

    repo: str
    reason: str


class ListReadyIssuesInput(BaseModel):
    repos: list[RepoName]
    label: str


class ReadyIssues(BaseModel):
    issues: list[ReadyIssue] = Field(default_factory=list, description="Oldest first, per repository.")
    problems: list[RepoProblem] = Field(default_factory=list)


class StartSpecRunsInput(BaseModel):
    issues: list[ReadyIssue]
    max_in_flight: int = Field(ge=1)
    task_queue: str | None = None
    requested_by: str = "factory"


class StartedRun(BaseModel):
    repo: str
    issue: int
    workflow_id: str


class SkippedIssue(BaseModel):
    repo: str
    issue: int
    reason: str


class FactoryReport(BaseModel):
    """What one factory run did; it is the workflow's result, so `temporal workflow show` tells it."""

    started: list[StartedRun] = Field(default_factory=list)
    skipped: list[SkippedIssue] = Field(default_factory=list)
    problems: list[RepoProblem] = Field(default_factory=list)
