"""What a verified delivery means for spec2ship, decided from its bytes alone (no Temporal, no GitHub).

| event, action | job for the drain |
|---|---|
| issues labeled (factory label, open issue) | `StartRun`: check the spec (bad: reply), start SpecToShip |
| issues edited (title or body) | `SignalRun` `spec_changed` to the issue's open run |
| issue_comment created, `/spec2ship ...` | `SteerRun`: check the permission, send the update (malformed: `PostReply`) |
| pull_request closed (a spec2ship branch) | `SignalRun` `pr_closed` to the run that opened the PR |
| check_suite / workflow_run completed (a spec2ship branch) | `SignalRun` `ci_completed` to the run of the branch |

Every other event and action is ignored without being looked at beyond its action. This is the part of
ingress that runs before the answer, so it is pure and fast; whatever needs the network is a job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.forge import ForgeKind, RepoRef
from contracts.runs import ForgeEvent
from workers.webhook.commands import USAGE, CommandError, is_command, parse_command
from workers.webhook.jobs import Job, PostReply, Reply, SignalRun, StartRun, SteerRun, target
from workers.webhook.links import issue_for_pull_request, issue_from_body, issue_from_branch
from workers.webhook.payloads import (
    CheckSuiteEvent,
    Delivery,
    Envelope,
    IssueCommentEvent,
    IssuesEvent,
    PullRequestEvent,
    PullRequestLink,
    WorkflowRunEvent,
)

Status = Literal["queued", "refused", "ignored", "pong"]
_Event = TypeVar("_Event", bound=BaseModel)


class BadDelivery(ValueError):
    """The body is not what GitHub sends for this event (answered 400); the message says what is wrong."""


class Triaged(BaseModel):
    """Ingress's decision: a job to spool (`queued`, or `refused` with the reply as the job), or nothing."""

    status: Status
    reason: str
    action: str | None = None
    repo: str | None = None
    job: Job | None = None

    @property
    def workflow_id(self) -> str | None:
        return target(self.job) if self.job is not None else None


def _ignored(reason: str, delivery: Delivery | None = None) -> Triaged:
    return Triaged(status="ignored", reason=reason, repo=delivery.repository.full_name if delivery else None)


def _queued(reason: str, delivery: Delivery, job: Job) -> Triaged:
    return Triaged(status="queued", reason=reason, repo=delivery.repository.full_name, job=job)


def _refused(reason: str, delivery: Delivery, reply: Reply) -> Triaged:
    return Triaged(status="refused", reason=reason, repo=delivery.repository.full_name, job=PostReply(reply=reply))


def _repo(delivery: Delivery) -> RepoRef:
    return RepoRef(
        kind=ForgeKind.github, location=delivery.repository.full_name, installation_id=delivery.installation_id
    )


def _where(error: ValidationError) -> str:
    """The fields a payload lacks or mistypes, named by their path (values are never quoted: they may be huge)."""
    return ", ".join(".".join(map(str, item["loc"])) or "(the body)" for item in error.errors()[:5])


def _parse(model: type[_Event], event: str, body: bytes) -> _Event:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise BadDelivery(f"the {event} payload lacks or mistypes: {_where(error)}") from None


class Triage:
    """Routes a verified delivery to the job it asks for; `label` is the factory label."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._routes: dict[tuple[str, str], Callable[[str, bytes], Triaged]] = {
            ("issues", "labeled"): self._issue_labeled,
            ("issues", "edited"): self._issue_edited,
            ("issue_comment", "created"): self._comment_created,
            ("pull_request", "closed"): self._pull_request_closed,
            ("check_suite", "completed"): self._check_suite_completed,
            ("workflow_run", "completed"): self._workflow_run_completed,
        }

    def __call__(self, event: str, body: bytes) -> Triaged:
        """Raises `BadDelivery` when the body is not a JSON object, or a handled event lacks what it needs."""
        try:
            envelope = Envelope.model_validate_json(body)
        except ValidationError as error:
            kind = error.errors()[0]["type"]
            if kind == "json_invalid":
                raise BadDelivery("body is not JSON (UTF-8, at most 200 levels deep); set the webhook's content "
                                  "type to application/json") from None
            if kind == "model_type":
                raise BadDelivery("body is not a JSON object") from None
            raise BadDelivery(f"the {event} payload lacks or mistypes: {_where(error)}") from None
        if event == "ping":
            return Triaged(status="pong", reason="spec2ship is listening")
        action = envelope.action
        route = self._routes.get((event, action or ""))
        if route is None:
            reason = f"{event}.{action} is not handled" if action else f"{event} is not handled"
            return Triaged(status="ignored", reason=reason, action=action)
        triaged = route(event, body)
        triaged.action = action
        return triaged

    # --- issues ------------------------------------------------------------------------------

    def _issue_labeled(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(IssuesEvent, event, body)
        label = delivery.label.name if delivery.label else None
        if label != self._label:
            return _ignored(f"label {label!r} is not the factory label {self._label!r}", delivery)
        issue = delivery.issue
        if issue.state != "open":
            return _ignored(f"issue #{issue.number} is {issue.state}", delivery)
        job = StartRun(repo=_repo(delivery), issue_number=issue.number, title=issue.title, body=issue.body,
                       requested_by=delivery.sender.login, label=label)
        return _queued("the spec will be checked and the run started", delivery, job)

    def _issue_edited(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(IssuesEvent, event, body)
        if not set(delivery.changes or {}) & {"body", "title"}:
            return _ignored("neither the title nor the body changed", delivery)
        if delivery.issue.is_pull_request:
            return _ignored("the edited issue is a pull request", delivery)
        changed = ForgeEvent(kind="spec_changed", actor=delivery.sender.login, url=delivery.issue.html_url)
        return self._signal(delivery, delivery.issue.number, changed)

    # --- commands ----------------------------------------------------------------------------

    def _comment_created(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(IssueCommentEvent, event, body)
        comment = delivery.comment
        if not is_command(comment.body):
            return _ignored("not a /spec2ship command", delivery)
        if comment.user.type == "Bot":
            return _ignored(f"command written by the bot {comment.user.login}", delivery)
        repo = _repo(delivery)
        thread = delivery.issue.number

        def reply(text: str) -> Reply:
            return Reply(repo=repo, issue_number=thread, body=f"@{comment.user.login} {text}")

        try:
            command = parse_command(comment.body or "")
        except CommandError as error:
            return _refused(f"malformed command: {error}", delivery, reply(f"{error}.\n\n{USAGE}"))
        issue_number = issue_from_body(delivery.issue.body) if delivery.issue.is_pull_request else thread
        if issue_number is None:
            return _refused(
                f"pull request #{thread} names no issue",
                delivery,
                reply(
                    "this pull request is not linked to a spec2ship run: its description has no `Closes #N`. "
                    "Write the command on the spec's issue instead."
                ),
            )
        job = SteerRun(repo=repo, thread=thread, issue_number=issue_number, commenter=comment.user.login,
                       command=command)
        return _queued(f"{command.verb.value} will be sent once {comment.user.login}'s permission is checked",
                       delivery, job)

    # --- pull requests and CI ------------------------------------------------------------------

    def _pull_request_closed(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(PullRequestEvent, event, body)
        pr = delivery.pull_request
        issue_number = issue_for_pull_request(pr.head.ref, pr.body)
        if issue_number is None:
            return _ignored(f"pull request #{pr.number} is not on a spec2ship branch", delivery)
        closed = ForgeEvent(kind="pr_closed", merged=bool(pr.merged), actor=delivery.sender.login,
                            head_sha=pr.head.sha, url=pr.html_url)
        return self._signal(delivery, issue_number, closed)

    def _check_suite_completed(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(CheckSuiteEvent, event, body)
        suite = delivery.check_suite
        ci = ForgeEvent(kind="ci_completed", conclusion=suite.conclusion, head_sha=suite.head_sha,
                        name=suite.app.name if suite.app else "", actor=delivery.sender.login, url=suite.url)
        return self._ci(delivery, suite.pull_requests, suite.head_branch, ci)

    def _workflow_run_completed(self, event: str, body: bytes) -> Triaged:
        delivery = _parse(WorkflowRunEvent, event, body)
        run = delivery.workflow_run
        ci = ForgeEvent(kind="ci_completed", conclusion=run.conclusion, head_sha=run.head_sha, name=run.name or "",
                        actor=delivery.sender.login, url=run.html_url)
        return self._ci(delivery, run.pull_requests, run.head_branch, ci)

    def _ci(self, delivery: Delivery, pulls: list[PullRequestLink], head_branch: str | None,
            ci: ForgeEvent) -> Triaged:
        branches = [pull.head.ref for pull in pulls] + [head_branch or ""]
        issue_number = next((n for n in map(issue_from_branch, branches) if n is not None), None)
        if issue_number is None:
            return _ignored("CI not on a spec2ship branch", delivery)
        return self._signal(delivery, issue_number, ci)

    def _signal(self, delivery: Delivery, issue_number: int, event: ForgeEvent) -> Triaged:
        job = SignalRun(repo=_repo(delivery), issue_number=issue_number, signal=event.kind, event=event)
        return _queued(f"{event.kind} will be signalled to the issue's run", delivery, job)
