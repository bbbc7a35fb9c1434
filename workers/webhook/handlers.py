"""What each handled delivery does; every other event and action is ignored.

| event, action | does |
|---|---|
| issues labeled (factory label) | check the issue's spec; invalid: reply naming each problem; else start SpecToShip |
| issues edited | signal `spec_changed` to the issue's open run |
| issue_comment created, `/spec2ship ...` | parse, check the commenter may write, send the update to the run |
| pull_request closed | signal `pr_closed` to the run that opened the PR |
| check_suite / workflow_run completed | signal `ci_completed` to the run whose branch it ran on |

A handler makes at most one Temporal call and, for commands, one permission check; replies to the
issue are returned as `Reply`s, which the server sends after answering GitHub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from activities.forge.base import ForgeError
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import CI_COMPLETED, PR_CLOSED, SPEC_CHANGED
from contracts.runs import ForgeEvent, SpecToShipInput
from specs.parser import SpecError, parse_issue_body
from workers.webhook.commands import USAGE, CommandError, is_command, parse_command
from workers.webhook.dedup import issue_run_id
from workers.webhook.forge import STEERING_PERMISSIONS, ForgeFactory
from workers.webhook.links import issue_for_pull_request, issue_from_body, issue_from_branch
from workers.webhook.payloads import (
    CheckSuiteEvent,
    Delivery,
    IssueCommentEvent,
    IssuesEvent,
    PullRequestEvent,
    PullRequestLink,
    WorkflowRunEvent,
)
from workers.webhook.runs import RunClosed, RunNotFound, Runs, UpdatePending, UpdateRejected
from workers.webhook.settings import WebhookSettings

log = logging.getLogger("spec2ship.webhook")


class Disposition(StrEnum):
    acted = "acted"  # a run was started, signalled or updated
    refused = "refused"  # addressed to spec2ship but not acted on; the reply says why
    ignored = "ignored"  # not for spec2ship, or nothing to act on


class Reply(BaseModel):
    """A comment to post on an issue or PR thread once GitHub has its answer."""

    repo: RepoRef
    issue_number: int
    body: str


class Outcome(BaseModel):
    disposition: Disposition
    reason: str
    workflow_id: str | None = None
    run_id: str | None = None
    replies: list[Reply] = Field(default_factory=list)


RunsProvider = Callable[[], Awaitable[Runs]]
Handler = Callable[[str, dict[str, Any]], Awaitable[Outcome]]


def _repo(delivery: Delivery) -> RepoRef:
    return RepoRef(
        kind=ForgeKind.github, location=delivery.repository.full_name, installation_id=delivery.installation_id
    )


def _acted(reason: str, workflow_id: str, run_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.acted, reason=reason, workflow_id=workflow_id, run_id=run_id)


def _ignored(reason: str, workflow_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.ignored, reason=reason, workflow_id=workflow_id)


def _refused(reason: str, reply: Reply, workflow_id: str | None = None) -> Outcome:
    return Outcome(disposition=Disposition.refused, reason=reason, workflow_id=workflow_id, replies=[reply])


def invalid_spec_reply(error: SpecError, label: str) -> str:
    """The comment that tells the issue's author what to fix, one problem per line with its line number."""
    count = len(error.problems)
    lines = [
        f"spec2ship did not start: the spec in this issue has {count} problem{'s' if count != 1 else ''}.",
        "",
    ]
    lines += [f"- line {problem.line}, `{problem.field}`: {problem.message}" for problem in error.problems]
    lines += [
        "",
        f"Fix the issue description, then remove and add the `{label}` label again to start the run.",
    ]
    return "\n".join(lines)


class Handlers:
    """Routes a verified, parsed delivery to what it means for spec2ship."""

    def __init__(self, settings: WebhookSettings, runs: RunsProvider, forges: ForgeFactory) -> None:
        self._settings = settings
        self._runs = runs
        self._forges = forges
        self._routes: dict[tuple[str, str], Handler] = {
            ("issues", "labeled"): self._issue_labeled,
            ("issues", "edited"): self._issue_edited,
            ("issue_comment", "created"): self._comment_created,
            ("pull_request", "closed"): self._pull_request_closed,
            ("check_suite", "completed"): self._check_suite_completed,
            ("workflow_run", "completed"): self._workflow_run_completed,
        }

    async def handle(self, event: str, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        """Raises pydantic's ValidationError when a handled event lacks a field it needs (bad input),
        and `runs.TemporalUnavailable` when Temporal cannot be reached (try again later)."""
        action = payload.get("action")
        handler = self._routes.get((event, action if isinstance(action, str) else ""))
        if handler is None:
            return _ignored(f"{event}.{action} is not handled" if action else f"{event} is not handled")
        return await handler(delivery_id, payload)

    # --- issues ------------------------------------------------------------------------------

    async def _issue_labeled(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = IssuesEvent.model_validate(payload)
        label = event.label.name if event.label else None
        if label != self._settings.factory_label:
            return _ignored(f"label {label!r} is not the factory label {self._settings.factory_label!r}")
        issue = event.issue
        if issue.state != "open":
            return _ignored(f"issue #{issue.number} is {issue.state}")
        repo = _repo(event)
        source = f"{repo.location}#{issue.number}"
        try:
            parse_issue_body(issue.body or "", issue.title, source)
        except SpecError as error:
            reply = Reply(repo=repo, issue_number=issue.number, body=invalid_spec_reply(error, label))
            return _refused(f"the spec in {source} has {len(error.problems)} problem(s)", reply)
        workflow_id = issue_run_id(repo.location, issue.number)
        run_input = SpecToShipInput(
            repo=repo,
            spec=SpecSource(kind="issue", issue_number=issue.number),
            requested_by=event.sender.login,
            issue_number=issue.number,
        )
        runs = await self._runs()
        try:
            run_id = await runs.start(workflow_id, run_input, self._settings.task_queue)
        except RunClosed as closed:
            return _refused(
                f"run {workflow_id} already finished",
                Reply(repo=repo, issue_number=issue.number, body=f"spec2ship did not start a new run: {closed}."),
                workflow_id,
            )
        return _acted("run started or already open", workflow_id, run_id)

    async def _issue_edited(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = IssuesEvent.model_validate(payload)
        changed = sorted(set(event.changes or {}) & {"body", "title"})
        if not changed:
            return _ignored("neither the title nor the body changed")
        if event.issue.is_pull_request:
            return _ignored("the edited issue is a pull request")
        spec_event = ForgeEvent(kind="spec_changed", actor=event.sender.login, url=event.issue.html_url)
        return await self._signal(event.repository.full_name, event.issue.number, SPEC_CHANGED, spec_event)

    # --- commands ----------------------------------------------------------------------------

    async def _comment_created(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = IssueCommentEvent.model_validate(payload)
        comment = event.comment
        if not is_command(comment.body):
            return _ignored("not a /spec2ship command")
        if comment.user.type == "Bot":
            return _ignored(f"command written by the bot {comment.user.login}")
        repo = _repo(event)
        thread = event.issue.number

        def reply(text: str) -> Reply:
            return Reply(repo=repo, issue_number=thread, body=f"@{comment.user.login} {text}")

        try:
            command = parse_command(comment.body or "")
        except CommandError as error:
            return _refused(f"malformed command: {error}", reply(f"{error}.\n\n{USAGE}"))
        issue_number = issue_from_body(event.issue.body) if event.issue.is_pull_request else thread
        if issue_number is None:
            return _refused(
                f"pull request #{thread} names no issue",
                reply(
                    "this pull request is not linked to a spec2ship run: its description has no `Closes #N`. "
                    "Write the command on the spec's issue instead."
                ),
            )
        workflow_id = issue_run_id(repo.location, issue_number)
        try:
            permission = await self._permission(repo, comment.user.login)
        except (ForgeError, TimeoutError) as error:
            # Without the permission nothing may change; and a forge we cannot use cannot take a reply.
            return _ignored(f"could not check {comment.user.login}'s permission on {repo.location}: {error}")
        if permission not in STEERING_PERMISSIONS:
            return _refused(
                f"{comment.user.login} has {permission} permission",
                reply(
                    f"only people with write or admin permission on {repo.location} can steer spec2ship runs "
                    f"(yours: {permission}). Nothing was changed."
                ),
                workflow_id,
            )
        runs = await self._runs()
        try:
            await runs.update(workflow_id, command.update, command.action(comment.user.login), delivery_id)
        except RunNotFound:
            return _refused(
                f"no open run {workflow_id}",
                reply(f"there is no open spec2ship run for #{issue_number}; `{command.verb.value}` changed nothing."),
                workflow_id,
            )
        except UpdateRejected as rejected:
            return _refused(
                f"{command.update} rejected: {rejected}",
                reply(f"`{command.verb.value}` was not accepted: {rejected}"),
                workflow_id,
            )
        except UpdatePending as pending:
            return _acted(f"sent, not yet accepted: {pending}", workflow_id)
        return _acted(f"{command.update} accepted", workflow_id)

    async def _permission(self, repo: RepoRef, user: str) -> str:
        def check() -> str:
            return self._forges(repo).permission(user)

        return await asyncio.wait_for(asyncio.to_thread(check), timeout=self._settings.github_timeout_s)

    # --- pull requests and CI ------------------------------------------------------------------

    async def _pull_request_closed(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = PullRequestEvent.model_validate(payload)
        pr = event.pull_request
        issue_number = issue_for_pull_request(pr.head.ref, pr.body)
        if issue_number is None:
            return _ignored(f"pull request #{pr.number} (branch {pr.head.ref}) is not a spec2ship branch")
        closed = ForgeEvent(
            kind="pr_closed", merged=bool(pr.merged), actor=event.sender.login, head_sha=pr.head.sha, url=pr.html_url
        )
        return await self._signal(event.repository.full_name, issue_number, PR_CLOSED, closed)

    async def _check_suite_completed(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = CheckSuiteEvent.model_validate(payload)
        suite = event.check_suite
        ci = ForgeEvent(
            kind="ci_completed",
            conclusion=suite.conclusion,
            head_sha=suite.head_sha,
            name=suite.app.name if suite.app else "",
            actor=event.sender.login,
            url=suite.url,
        )
        return await self._ci(event, suite.pull_requests, suite.head_branch, ci)

    async def _workflow_run_completed(self, delivery_id: str, payload: dict[str, Any]) -> Outcome:
        event = WorkflowRunEvent.model_validate(payload)
        run = event.workflow_run
        ci = ForgeEvent(
            kind="ci_completed",
            conclusion=run.conclusion,
            head_sha=run.head_sha,
            name=run.name or "",
            actor=event.sender.login,
            url=run.html_url,
        )
        return await self._ci(event, run.pull_requests, run.head_branch, ci)

    async def _ci(
        self, event: Delivery, pulls: list[PullRequestLink], head_branch: str | None, ci: ForgeEvent
    ) -> Outcome:
        branches = [pull.head.ref for pull in pulls] + [head_branch or ""]
        issue_number = next((n for n in map(issue_from_branch, branches) if n is not None), None)
        if issue_number is None:
            return _ignored(f"CI on {head_branch or 'no branch'} is not on a spec2ship branch")
        return await self._signal(event.repository.full_name, issue_number, CI_COMPLETED, ci)

    async def _signal(self, repo_full_name: str, issue_number: int, signal: str, forge_event: ForgeEvent) -> Outcome:
        workflow_id = issue_run_id(repo_full_name, issue_number)
        runs = await self._runs()
        try:
            await runs.signal(workflow_id, signal, forge_event)
        except RunNotFound:
            return _ignored(f"no open run {workflow_id}", workflow_id)
        return _acted(f"signalled {signal}", workflow_id)
