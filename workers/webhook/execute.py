"""Carrying out a spooled job: the only place the webhook talks to Temporal and GitHub.

A job is carried out at least once (the drain retries it until it has an outcome), so each step is
idempotent: a start joins the open run with the same workflow id, a signal carries the delivery id as
its request id and an update carries it as its update id (Temporal applies either once), and a reply is
posted by its own job. What cannot succeed now raises: `TemporalUnavailable` (the drain pauses and
retries every job later) or `GitHubUnavailable` (this job is retried after the wait GitHub asked for).
Everything else is an `Outcome`, including refusals, whose replies the drain spools as jobs of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from activities.forge.base import ForgeError
from contracts.forge import SpecSource
from contracts.runs import SpecToShipInput
from specs.parser import SpecError, parse_issue_body
from workers.webhook.forge import STEERING_PERMISSIONS, ForgeFactory
from workers.webhook.jobs import (
    AnyJob,
    Outcome,
    Reply,
    SignalRun,
    StartRun,
    SteerRun,
    acted,
    ignored,
    refused,
    target,
)
from workers.webhook.runs import RunClosed, RunNotFound, Runs, TemporalRefused, UpdatePending, UpdateRejected

log = logging.getLogger("spec2ship.webhook")

RunsProvider = Callable[[], Awaitable[Runs]]
T = TypeVar("T")


class GitHubUnavailable(Exception):
    """GitHub could not answer now (rate limit, 5xx, timeout); the job is tried again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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


class Executor:
    """Carries out jobs; `github_timeout_s` bounds each GitHub call (PyGithub blocks, so it runs in a thread)."""

    def __init__(self, runs: RunsProvider, forges: ForgeFactory, task_queue: str, github_timeout_s: float) -> None:
        self._runs = runs
        self._forges = forges
        self._task_queue = task_queue
        self._github_timeout_s = github_timeout_s

    async def __call__(self, key: str, job: AnyJob) -> Outcome:
        """Raises `runs.TemporalUnavailable` or `GitHubUnavailable` when the job should be tried again later."""
        try:
            if isinstance(job, StartRun):
                return await self._start(job)
            if isinstance(job, SignalRun):
                return await self._signal(key, job)
            if isinstance(job, SteerRun):
                return await self._steer(key, job)
            return await self._reply(job.reply)
        except TemporalRefused as error:
            return ignored(f"{error}; nothing to retry", target(job))

    async def _start(self, job: StartRun) -> Outcome:
        source = f"{job.repo.location}#{job.issue_number}"
        try:
            parse_issue_body(job.body or "", job.title, source)
        except SpecError as error:
            reply = Reply(repo=job.repo, issue_number=job.issue_number, body=invalid_spec_reply(error, job.label))
            return refused(f"the spec in {source} has {len(error.problems)} problem(s)", reply)
        workflow_id = target(job)
        assert workflow_id is not None
        run_input = SpecToShipInput(
            repo=job.repo,
            spec=SpecSource(kind="issue", issue_number=job.issue_number),
            requested_by=job.requested_by,
            issue_number=job.issue_number,
        )
        runs = await self._runs()
        try:
            run_id = await runs.start(workflow_id, run_input, self._task_queue)
        except RunClosed as closed:
            reply = Reply(repo=job.repo, issue_number=job.issue_number,
                          body=f"spec2ship did not start a new run: {closed}.")
            return refused(f"run {workflow_id} already finished", reply, workflow_id)
        return acted("run started or already open", workflow_id, run_id)

    async def _signal(self, key: str, job: SignalRun) -> Outcome:
        workflow_id = target(job)
        assert workflow_id is not None
        runs = await self._runs()
        try:
            await runs.signal(workflow_id, job.signal, job.event, request_id=f"github-delivery/{key}")
        except RunNotFound:
            return ignored(f"no open run {workflow_id}", workflow_id)
        return acted(f"signalled {job.signal}", workflow_id)

    async def _steer(self, key: str, job: SteerRun) -> Outcome:
        workflow_id = target(job)
        assert workflow_id is not None
        command = job.command

        def reply(text: str) -> Reply:
            return Reply(repo=job.repo, issue_number=job.thread, body=f"@{job.commenter} {text}")

        try:
            permission = await self._github(lambda: self._forges(job.repo).permission(job.commenter),
                                            f"checking {job.commenter}'s permission on {job.repo.location}")
        except ForgeError as error:
            # Without the permission nothing may change; and a forge we cannot use cannot take a reply.
            return ignored(f"could not check {job.commenter}'s permission on {job.repo.location}: {error}")
        if permission not in STEERING_PERMISSIONS:
            return refused(
                f"{job.commenter} has {permission} permission",
                reply(
                    f"only people with write or admin permission on {job.repo.location} can steer spec2ship runs "
                    f"(yours: {permission}). Nothing was changed."
                ),
                workflow_id,
            )
        runs = await self._runs()
        try:
            await runs.update(workflow_id, command.update, command.action(job.commenter), key)
        except RunNotFound:
            return refused(
                f"no open run {workflow_id}",
                reply(f"there is no open spec2ship run for #{job.issue_number}; `{command.verb.value}` changed "
                      "nothing."),
                workflow_id,
            )
        except UpdateRejected as rejected:
            return refused(
                f"{command.update} rejected: {rejected}",
                reply(f"`{command.verb.value}` was not accepted: {rejected}"),
                workflow_id,
            )
        except UpdatePending as pending:
            return acted(f"sent, not yet accepted: {pending}", workflow_id)
        return acted(f"{command.update} accepted", workflow_id)

    async def _reply(self, reply: Reply) -> Outcome:
        where = f"{reply.repo.location}#{reply.issue_number}"
        try:
            await self._github(lambda: self._forges(reply.repo).comment(None, reply.issue_number, reply.body),
                               f"replying on {where}")
        except ForgeError as error:
            log.warning("reply not posted: %s", error, extra={"repo": reply.repo.location, "issue": reply.issue_number})
            return ignored(f"reply on {where} not posted: {error}")
        return acted(f"replied on {where}", None)

    async def _github(self, call: Callable[[], T], doing: str) -> T:
        """`call` in a thread with the deadline; a retryable refusal or a timeout becomes `GitHubUnavailable`."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), timeout=self._github_timeout_s)
        except TimeoutError:
            raise GitHubUnavailable(f"GitHub did not answer within {self._github_timeout_s} s while {doing}") from None
        except ForgeError as error:
            if error.retryable:
                raise GitHubUnavailable(f"{error} (while {doing})", error.retry_after_s) from None
            raise
