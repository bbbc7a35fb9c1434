"""The factory's two activities: which issues are ready (GitHub), and starting their runs (Temporal).

This is also the webhook's safety net: a labelled open issue with no run at all gets one, whether its
delivery was lost, never sent, or refused while the webhook was down. An issue that had a run does not
get another from the schedule (a person can start one by labelling the issue again), and "had a run"
is read from two places: Temporal (the issue's deterministic workflow id, open or closed in any way),
and, for a run Temporal has forgotten after the namespace's retention period, the status label the
run left on the issue (`spec2ship:running`, `:awaiting-human`, `:merged`, `:rejected`).

Starting is bounded per repository by the runs already in flight there, counted in Temporal's
visibility (`WorkflowType='SpecToShip' AND ExecutionStatus='Running' AND WorkflowId STARTS_WITH
'spec2ship/<owner>/<repo>/'`), so runs started by the webhook count too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

import requests
from github import GithubException
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.config import task_queue
from activities.forge.base import ForgeError
from activities.forge.github_auth import GitHubAuth, forge_error, throttle_from_env
from contracts.activities import FactoryCalls
from contracts.factory import (
    FactoryReport,
    ListReadyIssuesInput,
    ReadyIssue,
    ReadyIssues,
    RepoProblem,
    SkippedIssue,
    StartedRun,
    StartSpecRunsInput,
)
from contracts.forge import STATUS_LABELS, ForgeKind, RepoRef, SpecSource
from contracts.names import SPEC_TO_SHIP, spec_to_ship_id
from contracts.runs import SpecToShipInput


class IssueSource(Protocol):
    def ready_issues(self, repo: str, label: str) -> list[ReadyIssue]:
        """Open issues (not pull requests) with `label`, oldest first. Raises ForgeError."""
        ...


class GitHubIssues:
    """`IssueSource` over the GitHub REST API (PyGithub), with the project's GitHub credentials.

    Without an explicit `auth` it uses the worker's shared credentials (`registry.github_auth()`, read on
    first use, so a worker without GitHub configured still starts), the same the forge activities use:
    an App's installation token is minted once per installation, not once per scheduled pass.
    """

    def __init__(self, auth: GitHubAuth | None = None, *, throttle: bool | None = None) -> None:
        self._auth = auth
        self._throttle = throttle

    def _credentials(self) -> GitHubAuth:
        if self._auth is not None:
            return self._auth
        from activities.forge.registry import github_auth

        return github_auth()

    def ready_issues(self, repo: str, label: str) -> list[ReadyIssue]:
        auth = self._credentials()
        installation = auth.installation_for(repo) if auth.is_app else None
        throttle = throttle_from_env() if self._throttle is None else self._throttle
        try:
            with auth.client(installation, throttle=throttle) as github:
                found = github.get_repo(repo).get_issues(state="open", labels=[label], sort="created", direction="asc")
                # The issues API lists pull requests too. Tell them apart by `html_url` (/pull/ vs /issues/),
                # which the listing carries: PyGithub would fetch each issue again to learn `pull_request`.
                return [
                    ReadyIssue(repo=repo, number=issue.number, title=issue.title, installation_id=installation,
                               status_label=_status_label(label.name for label in issue.labels))
                    for issue in found
                    if "/pull/" not in issue.html_url
                ]
        except (GithubException, requests.RequestException) as error:
            raise forge_error(error, f"listing open issues labelled {label!r}", repo, auth.secrets()) from None


_STATUS_LABELS = frozenset(STATUS_LABELS.values())


def _status_label(names: Iterable[str]) -> str | None:
    return next((name for name in names if name in _STATUS_LABELS), None)


def _by_repo(issues: Iterable[ReadyIssue]) -> dict[str, list[ReadyIssue]]:
    grouped: dict[str, list[ReadyIssue]] = {}
    for issue in issues:
        grouped.setdefault(issue.repo, []).append(issue)
    return grouped


def in_flight_query(repo: str) -> str:
    """Visibility query for the open SpecToShip runs of `owner/name` (a validated RepoName, so no quoting
    is needed); the prefix is that of `contracts.names.spec_to_ship_id` for GitHub issues."""
    return f"WorkflowType='{SPEC_TO_SHIP}' AND ExecutionStatus='Running' AND WorkflowId STARTS_WITH 'spec2ship/{repo}/'"


class FactoryActivities(FactoryCalls):
    """`queue` is where runs start unless the factory run names another (the worker's CPU queue)."""

    def __init__(self, client: Client, queue: str | None = None, issues: IssueSource | None = None) -> None:
        self._client = client
        self._queue = queue
        self._issues = issues or GitHubIssues()

    @activity.defn(name="list_ready_issues")
    def list_ready_issues(self, request: ListReadyIssuesInput) -> ReadyIssues:
        """Retryable GitHub failures (rate limits, 5xx) fail the activity so Temporal retries it; a
        repository that cannot be read at all is reported and the others go on."""
        ready = ReadyIssues()
        for repo in request.repos:
            try:
                ready.issues += self._issues.ready_issues(repo, request.label)
            except ForgeError as error:
                if error.retryable:
                    wait = timedelta(seconds=error.retry_after_s) if error.retry_after_s else None
                    raise ApplicationError(str(error), type="ForgeError", next_retry_delay=wait) from error
                ready.problems.append(RepoProblem(repo=repo, reason=str(error)))
        return ready

    @activity.defn(name="start_spec_runs")
    async def start_spec_runs(self, request: StartSpecRunsInput) -> FactoryReport:
        """Start at most `max_in_flight` minus what is already running, per repository, oldest issue first."""
        report = FactoryReport()
        queue = request.task_queue or self._queue or task_queue()
        for repo, issues in _by_repo(request.issues).items():
            running = (await self._client.count_workflows(in_flight_query(repo))).count
            slots = max(0, request.max_in_flight - running)
            for issue in issues:
                workflow_id = spec_to_ship_id(RepoRef(kind=ForgeKind.github, location=repo), "", issue.number)
                known = await self._status(workflow_id)
                if known is not None:
                    state = "is open" if known is WorkflowExecutionStatus.RUNNING else known.name.lower()
                    reason = f"its run {state}: {workflow_id}"
                    report.skipped.append(SkippedIssue(repo=repo, issue=issue.number, reason=reason))
                    continue
                if issue.status_label is not None:
                    reason = (f"it had a run (it carries {issue.status_label!r}), which Temporal no longer holds; "
                              "label the issue again to start a new one")
                    report.skipped.append(SkippedIssue(repo=repo, issue=issue.number, reason=reason))
                    continue
                if slots == 0:
                    reason = f"{request.max_in_flight} run(s) already in flight in {repo}; next schedule"
                    report.skipped.append(SkippedIssue(repo=repo, issue=issue.number, reason=reason))
                    continue
                if await self._start(workflow_id, issue, request.requested_by, queue):
                    report.started.append(StartedRun(repo=repo, issue=issue.number, workflow_id=workflow_id))
                    slots -= 1
                else:
                    reason = f"a run was started meanwhile: {workflow_id}"
                    report.skipped.append(SkippedIssue(repo=repo, issue=issue.number, reason=reason))
        activity.logger.info("factory: started %d, skipped %d", len(report.started), len(report.skipped))
        return report

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The status of the latest run with this id, or None when there never was one."""
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status

    async def _start(self, workflow_id: str, issue: ReadyIssue, requested_by: str, queue: str) -> bool:
        repo = RepoRef(kind=ForgeKind.github, location=issue.repo, installation_id=issue.installation_id)
        run_input = SpecToShipInput(
            repo=repo,
            spec=SpecSource(kind="issue", issue_number=issue.number),
            requested_by=requested_by,
            issue_number=issue.number,
        )
        try:
            await self._client.start_workflow(
                SPEC_TO_SHIP,
                run_input,
                id=workflow_id,
                task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
