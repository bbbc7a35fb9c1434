"""The webhook server: bad input, each handled event, the JSON logs, and the real Temporal side.

The first part drives the app with doubles (see webhook_doubles.py); the last part serves it with
real uvicorn over real HTTP against the Temporal dev server, with a stand-in SpecToShip workflow that
has the real handler names, to check starts, dedup, signals and validated updates end to end, through
the spool and the drain as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from doubles.http_server import served
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from webhook_doubles import (
    INVALID_SPEC_BODY,
    SECRET,
    Call,
    FakeGitHub,
    MakeWebhook,
    Webhook,
    comment_payload,
    issue_payload,
)

from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import APPROVE, CANCEL, CI_COMPLETED, PR_CLOSED, SPEC_CHANGED, SPEC_TO_SHIP
from contracts.runs import ForgeEvent, HumanAction, SpecToShipInput
from workers.webhook.app import create_app
from workers.webhook.jobs import Outcome
from workers.webhook.jsonlog import json_formatter
from workers.webhook.settings import WebhookSettings
from workers.webhook.signature import sign

RUN_7 = "spec2ship/octo/shop/issues/7"
MIB = 1024 * 1024


def _acted_on(webhook: Webhook, event: str, payload: dict[str, Any]) -> Call:
    """Deliver `payload`, expect it acted on, and return the one call it made to Temporal."""
    assert webhook.deliver(event, payload).status == "acted"
    [call] = webhook.runs.calls
    return call


# --- bad input -------------------------------------------------------------------------------


def test_unsigned_delivery_is_401(webhook: Webhook) -> None:
    response = webhook.deliver("issues", issue_payload(), signed=False)
    assert response.status_code == 401
    assert webhook.runs.calls == []


def test_wrongly_signed_delivery_is_401(webhook: Webhook) -> None:
    response = webhook.deliver("issues", issue_payload(), secret="not the secret")
    assert response.status_code == 401
    assert webhook.runs.calls == []


def test_a_signature_of_another_body_is_401(webhook: Webhook) -> None:
    body = json.dumps(issue_payload()).encode()
    response = webhook.client.post(
        "/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "issues", "X-Hub-Signature-256": sign(SECRET, body + b"\n")},
    )
    assert response.status_code == 401


def test_an_unsigned_delivery_does_not_poison_the_dedup_log(webhook: Webhook) -> None:
    assert webhook.deliver("issues", issue_payload(), delivery="d-1", signed=False).status_code == 401
    assert webhook.deliver("issues", issue_payload(), delivery="d-1").status == "acted"


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncated_json_is_400(webhook: Webhook, cut: int) -> None:
    body = json.dumps(issue_payload()).encode()[:-cut]
    response = webhook.deliver("issues", None, body=body)
    assert response.status_code == 400
    assert "not JSON" in response.json()["reason"]
    assert webhook.runs.calls == []


@pytest.mark.parametrize("body", [b"[1, 2]", b"null", b'"text"', b"\xff\xfe{}", b"payload=%7B%7D", b""])
def test_a_body_that_is_not_a_json_object_is_400(webhook: Webhook, body: bytes) -> None:
    assert webhook.deliver("issues", None, body=body).status_code == 400


def test_a_handled_event_missing_its_fields_is_400(webhook: Webhook) -> None:
    payload = issue_payload()
    del payload["issue"]["number"]
    response = webhook.deliver("issues", payload)
    assert response.status_code == 400
    assert "issue.number" in response.json()["reason"]
    assert webhook.runs.calls == []


def test_an_unhandled_event_is_never_read_closely(webhook: Webhook) -> None:
    response = webhook.deliver("star", {"action": "created", "whatever": [1, {"x": None}]})
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"


def test_a_missing_event_header_is_400(webhook: Webhook) -> None:
    body = json.dumps(issue_payload()).encode()
    response = webhook.client.post(
        "/webhooks/github", content=body, headers={"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Delivery": "d"}
    )
    assert response.status_code == 400
    assert "X-GitHub-Event" in response.json()["reason"]


def test_a_missing_delivery_header_is_400_since_it_keys_the_spool(webhook: Webhook) -> None:
    body = json.dumps(issue_payload()).encode()
    headers = {"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Event": "issues"}
    response = webhook.client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 400
    assert "X-GitHub-Delivery" in response.json()["reason"]
    assert webhook.runs.calls == []


def test_a_30_mb_body_is_413(webhook: Webhook) -> None:
    body = b"{" + b" " * (30 * MIB) + b"}"
    response = webhook.deliver("issues", None, body=body)
    assert response.status_code == 413
    assert webhook.runs.calls == []


async def _asgi_post(app: FastAPI, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST straight through ASGI, counting how many body chunks the app pulled. Returns (status, pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/github",
        "raw_path": b"/webhooks/github",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-github-event", b"issues"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return status, pulled


@contextlib.contextmanager
def _app_with_doubles(folder: Path) -> Iterator[FastAPI]:
    async def no_temporal() -> Any:
        raise AssertionError("Temporal must not be reached for an oversized body")

    app = create_app(WebhookSettings(secret=SecretStr(SECRET), spool_path=folder / "spool.sqlite3"), no_temporal,
                     FakeGitHub().forge)
    try:
        yield app
    finally:
        app.state.spool.close()


async def test_an_oversized_body_with_content_length_is_refused_unread(tmp_path: Path) -> None:
    chunks = [b" " * MIB] * 30
    with _app_with_doubles(tmp_path) as app:
        status, pulled = await _asgi_post(app, chunks, [(b"content-length", str(30 * MIB).encode())])
    assert (status, pulled) == (413, 0)


async def test_an_oversized_streamed_body_is_refused_once_over_the_cap(tmp_path: Path) -> None:
    chunks = [b" " * MIB] * 30  # no Content-Length: chunked transfer
    with _app_with_doubles(tmp_path) as app:
        status, pulled = await _asgi_post(app, chunks, [])
    assert status == 413
    assert pulled == 26  # 25 MiB is the cap; the 26th chunk crosses it and reading stops there


# --- issues ----------------------------------------------------------------------------------


def test_the_factory_label_starts_the_issues_run(webhook: Webhook) -> None:
    response = webhook.deliver("issues", issue_payload())
    assert response.status_code == 202
    # GitHub hears at once that the delivery is queued; the drain then starts the run.
    assert response.answer == {
        "status": "queued",
        "reason": "the spec will be checked and the run started",
        "workflow_id": RUN_7,
    }
    assert response.outcome == Outcome(
        disposition="acted", reason="run started or already open", workflow_id=RUN_7, run_id="run-1"
    )
    [call] = webhook.runs.calls
    assert (call.kind, call.workflow_id, call.extra) == ("start", RUN_7, "spec2ship-test")
    assert call.arg == SpecToShipInput(
        repo=RepoRef(kind=ForgeKind.github, location="octo/shop", installation_id=42),
        spec=SpecSource(kind="issue", issue_number=7),
        requested_by="author",
        issue_number=7,
    )
    assert webhook.github.comments == []


def test_the_factory_label_comes_from_the_settings(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(factory_label="ship-it")
    assert webhook.deliver("issues", issue_payload(label="spec2ship")).status == "ignored"
    assert webhook.deliver("issues", issue_payload(label="ship-it")).status == "acted"


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"label": "bug"}, "not the factory label"), ({"state": "closed"}, "is closed")],
)
def test_other_labels_and_closed_issues_are_ignored(webhook: Webhook, change: dict[str, str], reason: str) -> None:
    response = webhook.deliver("issues", issue_payload(**change))  # type: ignore[arg-type]
    assert response.status_code == 202
    assert reason in response.json()["reason"]
    assert webhook.runs.calls == []


def test_an_invalid_spec_is_answered_on_the_issue_and_starts_nothing(webhook: Webhook) -> None:
    response = webhook.deliver("issues", issue_payload(body=INVALID_SPEC_BODY))
    assert response.status_code == 202
    assert response.status == "refused"
    assert webhook.runs.calls == []
    [reply] = webhook.github.comments
    assert (reply.repo, reply.issue_number) == ("octo/shop", 7)
    assert "3 problems" in reply.body
    # Each problem with its line in the issue body; a missing field points at the fence (line 3).
    assert "- line 3, `team`: team is missing" in reply.body
    assert "- line 5, `service`: service 'Bad_Name' is not a service name" in reply.body
    assert "- line 6, `acceptance`: acceptance needs at least one criterion" in reply.body
    assert "add the `spec2ship` label again" in reply.body


def test_an_issue_without_a_spec_is_answered(webhook: Webhook) -> None:
    assert webhook.deliver("issues", issue_payload(body=None)).status == "refused"
    [reply] = webhook.github.comments
    assert "- line 1, `<spec>`: no spec found" in reply.body


def test_an_invalid_spec_from_an_unknown_installation_is_logged_not_crashed(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.github.unknown_installations.add(999)
    with caplog.at_level(logging.WARNING, logger="spec2ship.webhook"):
        response = webhook.deliver("issues", issue_payload(body=INVALID_SPEC_BODY, installation=999))
    assert response.status_code == 202
    assert webhook.runs.calls == []
    assert webhook.github.comments == []
    assert any("reply not posted" in record.getMessage() for record in caplog.records)


def test_a_finished_run_is_not_restarted(webhook: Webhook) -> None:
    webhook.runs.closed.add(RUN_7)
    response = webhook.deliver("issues", issue_payload())
    assert response.status == "refused"
    [reply] = webhook.github.comments
    assert "did not start a new run" in reply.body


def test_a_redelivered_label_reaches_temporal_once(webhook: Webhook) -> None:
    assert webhook.deliver("issues", issue_payload(), delivery="d-9").status == "acted"
    assert webhook.deliver("issues", issue_payload(), delivery="d-9").status == "duplicate"
    assert len(webhook.runs.calls) == 1


def test_a_redelivery_is_recognised_after_a_restart(make_webhook: MakeWebhook, tmp_path: Path) -> None:
    """The delivery ids are in the spool, on disk: a restarted webhook knows what it already took."""
    first = make_webhook(spool=tmp_path / "spool.sqlite3")
    assert first.deliver("issues", issue_payload(), delivery="d-9").status == "acted"
    first.close()
    again = make_webhook(spool=tmp_path / "spool.sqlite3")
    assert again.deliver("issues", issue_payload(), delivery="d-9").status == "duplicate"
    assert again.runs.calls == []


def test_an_edited_spec_signals_the_run(webhook: Webhook) -> None:
    call = _acted_on(webhook, "issues", issue_payload("edited", changes={"body": {"from": "old"}}))
    assert (call.kind, call.workflow_id, call.name) == ("signal", RUN_7, SPEC_CHANGED)
    assert call.arg == ForgeEvent(kind="spec_changed", actor="author")
    assert call.extra.startswith("github-delivery/")  # the request id that makes a repeated signal a no-op


def test_an_edit_without_a_run_or_without_a_spec_change_is_ignored(webhook: Webhook) -> None:
    webhook.runs.none_open = True
    assert webhook.deliver("issues", issue_payload("edited", changes={"body": {}})).status == "ignored"
    assert webhook.deliver("issues", issue_payload("edited", changes={"labels": {}})).status == "ignored"
    assert len(webhook.runs.calls) == 1


# --- pull requests and CI ------------------------------------------------------------------


def _pull_request(ref: str, body: str | None, merged: bool) -> dict[str, Any]:
    return {
        "action": "closed",
        "number": 31,
        "pull_request": {
            "number": 31,
            "head": {"ref": ref, "sha": "abc123"},
            "body": body,
            "merged": merged,
            "html_url": "https://github.com/octo/shop/pull/31",
        },
        "repository": {"full_name": "octo/shop"},
        "sender": {"login": "maintainer"},
    }


@pytest.mark.parametrize(
    ("ref", "body"),
    [("spec2ship/issue-7-friendlier-greeting", None), ("spec2ship/friendlier-greeting", "Fixes: #7")],
)
def test_a_closed_spec2ship_pull_request_signals_its_run(webhook: Webhook, ref: str, body: str | None) -> None:
    call = _acted_on(webhook, "pull_request", _pull_request(ref, body, merged=True))
    assert (call.workflow_id, call.name) == (RUN_7, PR_CLOSED)
    assert call.arg == ForgeEvent(
        kind="pr_closed", merged=True, actor="maintainer", head_sha="abc123", url="https://github.com/octo/shop/pull/31"
    )


def test_a_persons_pull_request_that_closes_the_issue_is_ignored(webhook: Webhook) -> None:
    response = webhook.deliver("pull_request", _pull_request("fix-greeting", "Closes #7", merged=False))
    assert response.status == "ignored"
    assert webhook.runs.calls == []


def test_a_finished_check_suite_signals_the_run_of_its_branch(webhook: Webhook) -> None:
    payload = {
        "action": "completed",
        "check_suite": {
            "head_branch": None,
            "head_sha": "abc123",
            "conclusion": "failure",
            "url": "https://api.github.com/repos/octo/shop/check-suites/5",
            "app": {"name": "GitHub Actions"},
            "pull_requests": [{"number": 31, "head": {"ref": "spec2ship/issue-7-x", "sha": "abc123"}}],
        },
        "repository": {"full_name": "octo/shop"},
        "sender": {"login": "github-actions[bot]"},
    }
    call = _acted_on(webhook, "check_suite", payload)
    assert (call.workflow_id, call.name) == (RUN_7, CI_COMPLETED)
    assert call.arg == ForgeEvent(
        kind="ci_completed",
        conclusion="failure",
        head_sha="abc123",
        name="GitHub Actions",
        actor="github-actions[bot]",
        url="https://api.github.com/repos/octo/shop/check-suites/5",
    )


def test_a_finished_workflow_run_signals_the_run_of_its_branch(webhook: Webhook) -> None:
    payload = {
        "action": "completed",
        "workflow_run": {
            "name": "CI",
            "head_branch": "spec2ship/issue-7",
            "head_sha": "def456",
            "conclusion": "success",
            "html_url": "https://github.com/octo/shop/actions/runs/9",
            "pull_requests": [],
        },
        "repository": {"full_name": "octo/shop"},
        "sender": {"login": "maintainer"},
    }
    call = _acted_on(webhook, "workflow_run", payload)
    assert call.arg == ForgeEvent(
        kind="ci_completed",
        conclusion="success",
        head_sha="def456",
        name="CI",
        actor="maintainer",
        url="https://github.com/octo/shop/actions/runs/9",
    )


# --- health, Temporal failures, logs --------------------------------------------------------


def test_health_and_readiness(webhook: Webhook) -> None:
    assert webhook.client.get("/healthz").json() == {"status": "ok"}
    ready = webhook.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["spool"]["pending"] == 0


def test_an_unreachable_temporal_does_not_stop_deliveries_from_being_taken(webhook: Webhook) -> None:
    """Readiness is the spool's: with Temporal away the webhook keeps answering 202 and keeps each delivery."""
    webhook.runs.down = True
    first = webhook.deliver("issues", issue_payload(), delivery="d-1")
    assert (first.status_code, first.answer["status"], first.outcome) == (202, "queued", None)
    row = webhook.row("d-1")
    assert row is not None and row.state == "pending" and row.attempts >= 1
    assert "connection refused" in (row.last_error or "")
    ready = webhook.client.get("/readyz").json()
    assert ready["spool"]["pending"] == 1 and "connection refused" in ready["drain"]["temporal_error"]
    assert webhook.runs.calls == []

    webhook.runs.down = False  # Temporal is back: the drain's next try (after its back-off) starts the run
    webhook.settle_until(lambda: webhook.runs.calls != [])
    [call] = webhook.runs.calls
    assert (call.kind, call.workflow_id) == ("start", RUN_7)
    done = webhook.row("d-1")
    assert done is not None and done.state == "done" and done.outcome is not None
    assert done.outcome.disposition == "acted"


def test_logs_are_json_with_the_delivery_and_no_secret(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spec2ship.webhook"):
        webhook.deliver("issues", issue_payload(), delivery="d-42")
    received, carried_out = [r for r in caplog.records if getattr(r, "delivery", None) == "d-42"]
    line = json.loads(json_formatter().format(received))
    assert {key: line[key] for key in ("delivery", "event", "action", "repo", "level", "workflow_id", "disposition")} \
        == {"delivery": "d-42", "event": "issues", "action": "labeled", "repo": "octo/shop", "level": "INFO",
            "workflow_id": RUN_7, "disposition": "queued"}
    line = json.loads(json_formatter().format(carried_out))
    assert {key: line[key] for key in ("delivery", "event", "workflow_id", "disposition", "attempt")} == {
        "delivery": "d-42", "event": "issues", "workflow_id": RUN_7, "disposition": "acted", "attempt": 1}
    assert SECRET not in caplog.text


# --- the real thing: uvicorn, HTTP, the Temporal dev server -----------------------------------


@workflow.defn(name=SPEC_TO_SHIP)
class StandInSpecToShip:
    """The real handler names and input types; approve needs a reason (its validator says so)."""

    @workflow.init
    def __init__(self, run_input: SpecToShipInput) -> None:
        self.received: list[str] = []
        self.done = False

    @workflow.run
    async def run(self, run_input: SpecToShipInput) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return self.received

    @workflow.signal(name=PR_CLOSED)
    def pr_closed(self, event: ForgeEvent) -> None:
        self.received.append(f"pr_closed merged={event.merged}")

    @workflow.update(name=APPROVE)
    def approve(self, action: HumanAction) -> None:
        self.received.append(f"approve by {action.actor}: {action.reason}")

    @approve.validator
    def check_approve(self, action: HumanAction) -> None:
        if not action.reason:
            raise ValueError("say why you approve: `/spec2ship approve <reason>`")

    @workflow.update(name=CANCEL)
    def cancel(self, action: HumanAction) -> None:
        self.received.append(f"cancel by {action.actor}")
        self.done = True

    @workflow.query(name="received")
    def get_received(self) -> list[str]:
        return self.received


async def post(client: httpx.AsyncClient, event: str, payload: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(SECRET, body)}
    return await client.post("/webhooks/github", content=body, headers=headers)


async def reply_to(github: FakeGitHub, sent: int) -> str:
    """The next reply after `sent` replies: real uvicorn posts replies after the response has gone."""
    for _ in range(500):
        if len(github.comments) > sent:
            return github.comments[sent].body
        await asyncio.sleep(0.01)
    raise AssertionError(f"no reply after the {sent} before it")


@dataclass
class Served:
    """The webhook app on real uvicorn, and what a delivery to it did once its drain was idle."""

    app: FastAPI
    client: httpx.AsyncClient

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def deliver(self, event: str, payload: dict[str, Any], delivery: str) -> tuple[int, str, Outcome | None]:
        """(HTTP status, answer status, the drain's outcome when it spooled the delivery)."""
        response = await post(self.client, event, payload, delivery)
        await self.app.state.drain.until_idle()
        row = await self.app.state.spool.row(delivery)
        answer = response.json()["status"]
        return response.status_code, answer, row.outcome if row is not None and answer == "queued" else None

    async def status(self, event: str, payload: dict[str, Any], delivery: str) -> str:
        _, answer, outcome = await self.deliver(event, payload, delivery)
        return outcome.disposition.value if outcome is not None else answer


@contextlib.asynccontextmanager
async def served_webhook(env: WorkflowEnvironment, task_queue: str, github: FakeGitHub,
                         spool: Path) -> AsyncIterator[Served]:
    """The webhook app (its own spool) served against the dev server; stopped and its spool closed after."""

    async def temporal() -> Client:
        return env.client

    settings = WebhookSettings(secret=SecretStr(SECRET), task_queue=task_queue, spool_path=spool)
    app = create_app(settings, temporal, github.forge)
    try:
        async with served(app) as client:
            yield Served(app, client)
    finally:
        await app.state.drain.stop()
        app.state.spool.close()


@contextlib.asynccontextmanager
async def _stand_in_webhook(
    env: WorkflowEnvironment, task_queue: str, github: FakeGitHub, spool: Path
) -> AsyncIterator[Served]:
    """A worker for the stand-in SpecToShip on the dev server, and the webhook app served against it."""
    async with (
        Worker(env.client, task_queue=task_queue, workflows=[StandInSpecToShip],
               workflow_runner=UnsandboxedWorkflowRunner()),
        served_webhook(env, task_queue, github, spool) as webhook,
    ):
        yield webhook


async def test_on_the_dev_server_a_label_starts_one_run_and_commands_steer_it(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    repo = f"octo/shop-{uuid.uuid4().hex[:8]}"
    workflow_id = f"spec2ship/{repo}/issues/7"
    github = FakeGitHub(permissions={"maintainer": "write"})
    labeled = issue_payload(repo=repo)

    def command(text: str) -> dict[str, Any]:
        payload = comment_payload(text)
        payload["repository"]["full_name"] = repo
        return payload

    closed = {
        "action": "closed",
        "pull_request": {"number": 31, "head": {"ref": "spec2ship/issue-7-x", "sha": "abc"}, "merged": False},
        "repository": {"full_name": repo},
        "sender": {"login": "maintainer"},
    }
    async with _stand_in_webhook(dev_env, task_queue, github, tmp_path / "one.sqlite3") as webhook:
        assert (await webhook.get("/readyz")).status_code == 200
        # Two deliveries of the label (say, labelled twice): one run.
        first = await webhook.deliver("issues", labeled, "label-1")
        second = await webhook.deliver("issues", labeled, "label-2")
        assert (first[:2], second[:2]) == ((202, "queued"), (202, "queued"))
        handle = dev_env.client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        assert first[2] is not None and second[2] is not None
        assert first[2].run_id == second[2].run_id == description.run_id

        # The validator's reason comes back as a reply; nothing enters the run.
        assert await webhook.status("issue_comment", command("/spec2ship approve"), "approve-0") == "refused"
        assert "say why you approve" in await reply_to(github, 0)

        assert await webhook.status("issue_comment", command("/spec2ship approve tests are green"),
                                    "approve-1") == "acted"
        assert await webhook.status("pull_request", closed, "closed-1") == "acted"

    # Another replica (a spool of its own, which never saw them) gets the same approve and the same PR closing
    # again: Temporal applies each once, by the update id and the signal's request id (both the delivery id).
    async with _stand_in_webhook(dev_env, task_queue, github, tmp_path / "two.sqlite3") as webhook:
        assert await webhook.status("issue_comment", command("/spec2ship approve tests are green"),
                                    "approve-1") == "acted"
        assert await webhook.status("pull_request", closed, "closed-1") == "acted"
        assert await webhook.status("issue_comment", command("/spec2ship cancel"), "cancel-1") == "acted"
        assert await handle.result() == [
            "approve by maintainer: tests are green",
            "pr_closed merged=False",
            "cancel by maintainer",
        ]
        # The run is over: a command is answered, a signal is ignored, the label does not start it again.
        assert await webhook.status("issue_comment", command("/spec2ship approve late"), "approve-2") == "refused"
        assert "no open spec2ship run for #7" in await reply_to(github, 1)
        assert await webhook.status("pull_request", closed, "closed-2") == "ignored"
        assert await webhook.status("issues", labeled, "label-3") == "refused"
        assert "already finished" in await reply_to(github, 2)


# --- the serve command ----------------------------------------------------------------------


def test_serve_without_a_webhook_secret_is_a_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from workers.cli_webhook import webhook_app

    monkeypatch.delenv("SPEC2SHIP_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SPEC2SHIP_WEBHOOK_SECRET_FILE", raising=False)
    result = CliRunner().invoke(webhook_app, ["serve"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("spec2ship webhook: no webhook secret: set SPEC2SHIP_WEBHOOK_SECRET")


def test_serve_runs_the_app_on_uvicorn_with_json_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import workers.cli_webhook as cli_webhook

    served: dict[str, Any] = {}
    monkeypatch.setenv("SPEC2SHIP_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SPEC2SHIP_WEBHOOK_SPOOL", str(tmp_path / "spool.sqlite3"))
    monkeypatch.setenv("SPEC2SHIP_FACTORY_LABEL", "ship-it")
    monkeypatch.setattr(cli_webhook.uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli_webhook.webhook_app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
        assert result.exit_code == 0, result.output
        assert (served["host"], served["port"]) == ("0.0.0.0", 8123)
        assert isinstance(served["app"], FastAPI)
        assert served["app"].state.spool.path == tmp_path / "spool.sqlite3"
        assert isinstance(root.handlers[0].formatter, type(json_formatter()))
        # A second process on the same spool is refused in one line: each replica needs its own.
        again = CliRunner().invoke(cli_webhook.webhook_app, ["serve"])
        assert again.exit_code == 2
        assert "in use by another webhook process" in again.output and again.output.count("\n") == 1
        served["app"].state.spool.close()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_the_real_spec_to_ship_refuses_an_early_approve_and_the_reply_says_why(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """Against the real workflow (its activities are not served here, so it stays at its first stage)."""
    from workflows.spec_to_ship import SpecToShip

    repo = f"octo/real-{uuid.uuid4().hex[:8]}"
    github = FakeGitHub(permissions={"maintainer": "write"})
    comment = comment_payload("/spec2ship approve", repo=repo)
    async with (
        Worker(dev_env.client, task_queue=task_queue, workflows=[SpecToShip]),
        served_webhook(dev_env, task_queue, github, tmp_path / "spool.sqlite3") as webhook,
    ):
        assert await webhook.status("issues", issue_payload(repo=repo), "label-1") == "acted"
        assert await webhook.status("issue_comment", comment, "approve-1") == "refused"
        reply = await reply_to(github, 0)
        assert f"`approve` was not accepted: run spec2ship/{repo}/issues/7 is not waiting for a human" in reply
        await dev_env.client.get_workflow_handle(f"spec2ship/{repo}/issues/7").terminate("test over")
