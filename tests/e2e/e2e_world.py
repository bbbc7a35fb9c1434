"""The world of the GitHub end-to-end tests: the fake GitHub with people and repositories, signed
deliveries built from the fake's own JSON, and waiting helpers (`doubles.http_server.served` serves the app).

Deliveries are made the way GitHub makes them: the `issue`, `comment`, `pull_request`, `label` and
`repository` objects are the fake's REST answers for those objects (held to GitHub's OpenAPI
description), the body is signed with the webhook secret (HMAC-SHA256, `X-Hub-Signature-256`), and each
carries an `X-GitHub-Delivery` id; a redelivery repeats the same body and id.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import yaml
from doubles.github_server import FakeGitHub
from temporalio.client import WorkflowHandle

from contracts.names import STATUS
from contracts.runs import RunStatus
from workers.webhook.signature import sign

SECRET = "e2e-webhook-secret"
LABEL = "spec2ship"
BOT = "spec2ship-bot"
MAINTAINER = "maintainer"  # write permission: may steer runs
READER = "reader"  # read permission: may not
LEAD = "lead"  # write permission too: labels issues, so four eyes keeps them from approving their own

T = TypeVar("T")


@dataclass
class Delivery:
    """One signed delivery, kept so that it can be delivered again (a GitHub redelivery)."""

    event: str
    body: bytes
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def headers(self, secret: str = SECRET) -> dict[str, str]:
        return {
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": self.delivery_id,
            "X-Hub-Signature-256": sign(secret, self.body),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/e2e",
        }


class GitHubWorld:
    """The fake GitHub, its people, and deliveries built from its answers."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.bot_token = fake.add_token(BOT)
        self.tokens = {name: fake.add_token(name) for name in (MAINTAINER, LEAD, READER)}

    def new_repo(self, files: dict[str, str]) -> str:
        """A repository of its own for each test (run ids on the shared dev server are global)."""
        name = f"acme/shop-{uuid.uuid4().hex[:8]}"
        self.fake.add_repo(name, files)
        self.fake.add_collaborator(name, BOT, "write")
        self.fake.add_collaborator(name, MAINTAINER, "write")
        self.fake.add_collaborator(name, LEAD, "write")
        self.fake.add_collaborator(name, READER, "read")
        return name

    async def api(self, method: str, path: str, *, as_user: str | None = None, body: Any = None) -> Any:
        token = self.tokens[as_user] if as_user else self.bot_token
        async with httpx.AsyncClient(base_url=self.fake.api_url, timeout=10) as client:
            answer = await client.request(method, path, json=body, headers={"Authorization": f"token {token}"})
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def sender(self, login: str) -> dict[str, Any]:
        return self.fake.shapes.simple_user(self.fake.add_user(login))

    async def labeled(self, repo: str, number: int, by: str = MAINTAINER) -> Delivery:
        payload = {
            "action": "labeled",
            "issue": await self.api("GET", f"/repos/{repo}/issues/{number}"),
            "label": await self.api("GET", f"/repos/{repo}/labels/{LABEL}"),
            "repository": await self.api("GET", f"/repos/{repo}"),
            "sender": self.sender(by),
        }
        return Delivery("issues", json.dumps(payload).encode())

    async def commented(self, repo: str, number: int, text: str, by: str) -> Delivery:
        """`by` really comments on the fake (with their own token), then GitHub would deliver this."""
        comment = await self.api("POST", f"/repos/{repo}/issues/{number}/comments", as_user=by, body={"body": text})
        payload = {
            "action": "created",
            "issue": await self.api("GET", f"/repos/{repo}/issues/{number}"),
            "comment": comment,
            "repository": await self.api("GET", f"/repos/{repo}"),
            "sender": comment["user"],
        }
        return Delivery("issue_comment", json.dumps(payload).encode())

    async def pull_request_closed(self, repo: str, number: int, by: str) -> Delivery:
        payload = {
            "action": "closed",
            "number": number,
            "pull_request": await self.api("GET", f"/repos/{repo}/pulls/{number}"),
            "repository": await self.api("GET", f"/repos/{repo}"),
            "sender": self.sender(by),
        }
        return Delivery("pull_request", json.dumps(payload).encode())

    def bot_comments(self, repo: str, number: int) -> list[str]:
        return [c.body for c in self.fake.comments(repo, number) if c.user.login == BOT]


def spec_body(service: str, team: str, *, extra: str = "") -> str:
    """A spec in an issue body, with no `title`: the issue's title is the spec's title."""
    front = {
        "spec": 1, "service": service, "team": team, "kind": "chore",
        "constraints": {"paths": ["README.md"]},
        "acceptance": [{"id": "readme-mentions-health", "run": "grep -q '/health' README.md", "timeout": 30}],
    }
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + extra + "---\n" + textwrap.dedent("""\
        The README should tell people that `GET /health` answers 200 when the shop is up.
        """)


def coder_script(readme: str) -> str:
    """Scripted model turns: write the README, then say so."""
    written = readme + "\n## Health\n\n`GET /health` answers 200 when the shop is up.\n"
    turns = [
        {"content": "Documenting /health.",
         "tool_calls": [{"name": "write_file", "arguments": {"path": "README.md", "content": written}}],
         "usage": {"input_tokens": 1200, "output_tokens": 150}},
        {"content": "The README documents /health.", "usage": {"input_tokens": 1400, "output_tokens": 20}},
    ]
    return yaml.safe_dump({"model": "scripted-coder", "turns": turns}, sort_keys=False)


async def deliver(client: httpx.AsyncClient, delivery: Delivery) -> dict[str, Any]:
    answer = await client.post("/webhooks/github", content=delivery.body, headers=delivery.headers())
    assert answer.status_code in (200, 202), answer.text
    result: dict[str, Any] = answer.json()
    return result


async def eventually(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll `check` until it returns something (not None/False); fails with `what` after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


async def status_when(handle: WorkflowHandle[Any, Any], done: Callable[[RunStatus], bool], what: str,
                      timeout: float = 120) -> RunStatus:
    async def poll() -> RunStatus:
        while True:
            status: RunStatus = await handle.query(STATUS, result_type=RunStatus)
            if done(status):
                return status
            await asyncio.sleep(0.2)

    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        last = await handle.query(STATUS, result_type=RunStatus)
        raise AssertionError(f"gave up waiting for {what}; the run is {last.model_dump_json()}") from None
