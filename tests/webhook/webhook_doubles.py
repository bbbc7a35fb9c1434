"""Doubles and payload builders for the webhook tests: a recorder in place of Temporal, a small
forge in place of GitHub.

The app gets both injected (`create_app`'s factories); the real Temporal side (`TemporalRuns`) is
tested against the dev server in test_webhook_app.py, the real GitHub forge in the e2e test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from activities.forge.base import ForgeError
from contracts.forge import PullRequest, RepoRef
from contracts.runs import ForgeEvent, HumanAction, SpecToShipInput
from workers.webhook.app import create_app
from workers.webhook.runs import RunClosed, RunNotFound, UpdateRejected
from workers.webhook.settings import WebhookSettings
from workers.webhook.signature import sign

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
    extra: str = ""  # task queue for start, update id for update


@dataclass
class FakeRuns:
    """Records every Temporal call. Runs are open unless listed in `missing` (all closed when
    `none_open`); `closed` runs refuse a new start; `rejections` maps an update name to its reason."""

    calls: list[Call] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    none_open: bool = False
    closed: set[str] = field(default_factory=set)
    rejections: dict[str, str] = field(default_factory=dict)
    is_healthy: bool = True

    def _open(self, workflow_id: str) -> bool:
        return not self.none_open and workflow_id not in self.missing

    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        self.calls.append(Call("start", workflow_id, "SpecToShip", run_input, task_queue))
        if workflow_id in self.closed:
            raise RunClosed(workflow_id)
        return "run-1"

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent) -> None:
        self.calls.append(Call("signal", workflow_id, signal, event))
        if not self._open(workflow_id):
            raise RunNotFound(workflow_id)

    async def update(self, workflow_id: str, update: str, action: HumanAction, update_id: str) -> None:
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
class Webhook:
    """The app under test with its doubles, and a `deliver` that signs like GitHub does."""

    client: TestClient
    runs: FakeRuns
    github: FakeGitHub
    settings: WebhookSettings

    def deliver(
        self,
        event: str,
        payload: Any,
        *,
        delivery: str | None = None,
        body: bytes | None = None,
        secret: str = SECRET,
        signed: bool = True,
    ) -> Any:  # the TestClient's response (httpx or httpx2, whichever starlette uses)
        return deliver(self.client, event, payload, delivery=delivery, body=body, secret=secret, signed=signed)


def deliver(
    client: TestClient,
    event: str,
    payload: Any,
    *,
    delivery: str | None = None,
    body: bytes | None = None,
    secret: str = SECRET,
    signed: bool = True,
) -> Any:
    """POST a delivery the way GitHub does: JSON body, event and delivery headers, HMAC signature."""
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }
    if signed:
        headers["X-Hub-Signature-256"] = sign(secret, raw)
    return client.post("/webhooks/github", content=raw, headers=headers)


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


def build_webhook(**overrides: Any) -> Webhook:
    """The app with fresh doubles; `overrides` go to WebhookSettings (e.g. factory_label)."""
    settings = WebhookSettings(secret=SecretStr(SECRET), task_queue="spec2ship-test", **overrides)
    runs = FakeRuns()
    github = FakeGitHub(permissions={"maintainer": "write", "owner": "admin"})

    async def temporal() -> FakeRuns:
        return runs

    client = TestClient(create_app(settings, temporal, github.forge))
    return Webhook(client, runs, github, settings)
