"""Doubles and payload builders for the webhook tests: a recorder in place of Temporal, a small
forge in place of GitHub, and the app with its real spool (in a temporary folder) and drain.

The app gets both doubles injected (`create_app`'s factories); the real Temporal side (`TemporalRuns`)
is tested against the dev server in test_webhook_app.py, the real GitHub forge in the e2e test.
`Webhook.deliver` posts like GitHub and then waits until the drain has nothing left to do, so a test
reads what the delivery did (`Delivered.status`: the drain's outcome, or the answer when nothing was
spooled) without waiting on a clock.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from activities.forge.base import ForgeError
from contracts.forge import PullRequest, RepoRef
from contracts.runs import ForgeEvent, HumanAction, SpecToShipInput
from workers.webhook.app import create_app
from workers.webhook.drain import Drain
from workers.webhook.jobs import Outcome
from workers.webhook.runs import RunClosed, RunNotFound, TemporalUnavailable, UpdateRejected
from workers.webhook.settings import WebhookSettings
from workers.webhook.signature import sign
from workers.webhook.spool import Row, Spool

SECRET = "test-webhook-secret"

VALID_SPEC_BODY = """Make the greeting friendlier.

```spec2ship
spec: 1
service: greeter
team: web
acceptance:
  - id: tests-pass
    run: pytest -q
```
"""

INVALID_SPEC_BODY = """Please fix the greeter.

```spec2ship
spec: 1
service: Bad_Name
acceptance: []
```
"""


@dataclass
class Call:
    kind: str  # start | signal | update
    workflow_id: str
    name: str
    arg: SpecToShipInput | ForgeEvent | HumanAction
    extra: str = ""  # task queue for start, request id for signal, update id for update


@dataclass
class FakeRuns:
    """Records every Temporal call. Runs are open unless listed in `missing` (all closed when
    `none_open`); `closed` runs refuse a new start; `rejections` maps an update name to its reason;
    while `down`, every call fails as an unreachable Temporal does (and is not recorded)."""

    calls: list[Call] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    none_open: bool = False
    closed: set[str] = field(default_factory=set)
    rejections: dict[str, str] = field(default_factory=dict)
    is_healthy: bool = True
    down: bool = False

    def _open(self, workflow_id: str) -> bool:
        return not self.none_open and workflow_id not in self.missing

    def _reach(self) -> None:
        if self.down:
            raise TemporalUnavailable("cannot connect to Temporal: connection refused (FakeRuns.down)")

    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        self._reach()
        self.calls.append(Call("start", workflow_id, "SpecToShip", run_input, task_queue))
        if workflow_id in self.closed:
            raise RunClosed(workflow_id)
        return "run-1"

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent, request_id: str) -> None:
        self._reach()
        self.calls.append(Call("signal", workflow_id, signal, event, request_id))
        if not self._open(workflow_id):
            raise RunNotFound(workflow_id)

    async def update(self, workflow_id: str, update: str, action: HumanAction, update_id: str) -> None:
        self._reach()
        self.calls.append(Call("update", workflow_id, update, action, update_id))
        if not self._open(workflow_id):
            raise RunNotFound(workflow_id)
        if update in self.rejections:
            raise UpdateRejected(self.rejections[update])

    async def healthy(self) -> bool:
        return self.is_healthy


@dataclass
class Comment:
    repo: str
    issue_number: int | None
    body: str


@dataclass
class FakeGitHub:
    """Permissions per login (default `read`), comments posted, installations GitHub does not know."""

    permissions: dict[str, str] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    unknown_installations: set[int] = field(default_factory=set)
    permission_checks: list[tuple[str, str]] = field(default_factory=list)

    def forge(self, repo: RepoRef) -> _RepoForge:
        if repo.installation_id in self.unknown_installations:
            raise ForgeError(f"GitHub App has no installation {repo.installation_id}: install the app")
        return _RepoForge(self, repo)


@dataclass
class _RepoForge:
    github: FakeGitHub
    repo: RepoRef

    def permission(self, user: str) -> str:
        self.github.permission_checks.append((self.repo.location, user))
        return self.github.permissions.get(user, "read")

    def comment(self, pr: PullRequest | None, issue_number: int | None, body: str) -> None:
        self.github.comments.append(Comment(self.repo.location, issue_number, body))


@dataclass
class Delivered:
    """A delivery's HTTP answer and, when it was spooled, what the drain made of it."""

    status_code: int
    answer: dict[str, Any]
    outcome: Outcome | None

    @property
    def status(self) -> str:
        """The final word: the drain's disposition (acted, refused, ignored), else the answer's status."""
        return self.outcome.disposition.value if self.outcome else str(self.answer.get("status"))

    @property
    def reason(self) -> str:
        return self.outcome.reason if self.outcome else str(self.answer.get("reason"))

    @property
    def workflow_id(self) -> str | None:
        found = self.outcome.workflow_id if self.outcome else None
        return found or self.answer.get("workflow_id")

    def json(self) -> dict[str, Any]:
        return self.answer


@dataclass
class Webhook:
    """The app under test with its doubles, and a `deliver` that signs like GitHub does."""

    client: TestClient
    runs: FakeRuns
    github: FakeGitHub
    settings: WebhookSettings
    folder: Path | None = None

    @property
    def spool(self) -> Spool:
        spool: Spool = self.client.app.state.spool  # type: ignore[attr-defined]
        return spool

    @property
    def drain(self) -> Drain:
        drain: Drain = self.client.app.state.drain  # type: ignore[attr-defined]
        return drain

    def settle(self) -> None:
        """Until the drain has nothing due and nothing in progress."""
        self.client.portal.call(self.drain.until_idle)  # type: ignore[union-attr]

    def settle_until(self, check: Callable[[], bool], limit_s: float = 60.0) -> None:
        """Settle until `check` holds: a delivery waiting out a back-off is tried again once it is due."""
        deadline = time.monotonic() + limit_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"the drain did not get there within {limit_s} s")
            time.sleep(0.05)
            self.settle()

    def row(self, key: str) -> Row | None:
        return self.client.portal.call(self.spool.row, key)  # type: ignore[union-attr]

    def deliver(
        self,
        event: str,
        payload: Any,
        *,
        delivery: str | None = None,
        body: bytes | None = None,
        secret: str = SECRET,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Delivered:
        delivery = delivery or str(uuid.uuid4())
        response = deliver(self.client, event, payload, delivery=delivery, body=body, secret=secret, signed=signed,
                           headers=headers)
        self.settle()
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        row = self.row(delivery) if response.status_code == 202 and answer.get("status") != "duplicate" else None
        outcome = row.outcome if row is not None and answer.get("status") == "queued" else None
        return Delivered(response.status_code, answer, outcome)

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def deliver(
    client: TestClient,
    event: str,
    payload: Any,
    *,
    delivery: str | None = None,
    body: bytes | None = None,
    secret: str = SECRET,
    signed: bool = True,
    headers: dict[str, str] | None = None,
) -> Any:  # the TestClient's response (httpx or httpx2, whichever starlette uses)
    """POST a delivery the way GitHub does: JSON body, event and delivery headers, HMAC signature."""
    raw = body if body is not None else json.dumps(payload).encode()
    sent = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }
    if signed:
        sent["X-Hub-Signature-256"] = sign(secret, raw)
    sent.update(headers or {})
    return client.post("/webhooks/github", content=raw, headers=sent)


MakeWebhook = Callable[..., Webhook]


def issue_payload(
    action: str = "labeled",
    *,
    number: int = 7,
    body: str | None = VALID_SPEC_BODY,
    label: str = "spec2ship",
    installation: int | None = 42,
    state: str = "open",
    repo: str = "octo/shop",
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "issue": {"number": number, "title": "Friendlier greeting", "body": body, "state": state},
        "label": {"name": label},
        "repository": {"full_name": repo},
        "sender": {"login": "author", "type": "User"},
    }
    if installation is not None:
        payload["installation"] = {"id": installation}
    if changes is not None:
        payload["changes"] = changes
    return payload


def comment_payload(
    text: str,
    *,
    login: str = "maintainer",
    number: int = 7,
    on_pr_body: str | None = None,
    installation: int | None = 42,
    user_type: str = "User",
    repo: str = "octo/shop",
) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": number, "title": "t", "body": on_pr_body or "", "state": "open"}
    if on_pr_body is not None:
        issue["pull_request"] = {"url": f"https://api.github.com/repos/octo/shop/pulls/{number}"}
    payload: dict[str, Any] = {
        "action": "created",
        "issue": issue,
        "comment": {"id": 1, "body": text, "user": {"login": login, "type": user_type}},
        "repository": {"full_name": repo},
        "sender": {"login": login, "type": user_type},
    }
    if installation is not None:
        payload["installation"] = {"id": installation}
    return payload


def build_webhook(spool: Path | None = None, **overrides: Any) -> Webhook:
    """The app with fresh doubles, running (lifespan started: its drain runs) until `Webhook.close`.
    `spool` defaults to a temporary folder of its own; `overrides` go to WebhookSettings (e.g. factory_label)."""
    folder = None if spool is not None else Path(tempfile.mkdtemp(prefix="spec2ship-webhook-"))
    path = spool if spool is not None else folder / "spool.sqlite3"  # type: ignore[operator]
    settings = WebhookSettings(secret=SecretStr(SECRET), task_queue="spec2ship-test", spool_path=path, **overrides)
    runs = FakeRuns()
    github = FakeGitHub(permissions={"maintainer": "write", "owner": "admin"})

    async def temporal() -> FakeRuns:
        return runs

    client = TestClient(create_app(settings, temporal, github.forge))
    client.__enter__()
    return Webhook(client, runs, github, settings, folder)
