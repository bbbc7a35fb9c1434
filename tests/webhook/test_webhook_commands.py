"""`/spec2ship ...` comments: the grammar, and what a delivered command does (or refuses to do)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from doubles.github_server import FakeGitHub as GitHubServer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from webhook_doubles import (
    INVALID_SPEC_BODY,
    SECRET,
    FakeRuns,
    MakeWebhook,
    Webhook,
    comment_payload,
    deliver,
    issue_payload,
)

from activities.forge.github import GitHubForge
from activities.forge.github_auth import GitHubAuth
from contracts.forge import RepoRef
from contracts.names import APPROVE, CANCEL, OVERRIDE, REJECT, REQUEST_CHANGES, RETRY
from contracts.runs import HumanAction
from workers.webhook.app import create_app
from workers.webhook.commands import USAGE, CommandError, Verb, is_command, parse_command
from workers.webhook.forge import IssueForge
from workers.webhook.settings import WebhookSettings

RUN_7 = "spec2ship/octo/shop/issues/7"

# --- grammar -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verb", "reason", "decision"),
    [
        ("/spec2ship approve", Verb.approve, "", None),
        ("/spec2ship approve looks right to me", Verb.approve, "looks right to me", None),
        ("  /spec2ship   APPROVE   ok  ", Verb.approve, "ok", None),
        ("/spec2ship reject the intent is wrong", Verb.reject, "the intent is wrong", None),
        ("/spec2ship request-changes use the\nexisting helper", Verb.request_changes, "use the\nexisting helper", None),
        ("/spec2ship override merge CI is flaky today", Verb.override, "CI is flaky today", "merge"),
        ("/spec2ship override REJECT\nnot now", Verb.override, "not now", "reject"),
        ("/spec2ship retry", Verb.retry, "", None),
        ("/spec2ship cancel no longer needed", Verb.cancel, "no longer needed", None),
    ],
)
def test_parse_command(text: str, verb: Verb, reason: str, decision: str | None) -> None:
    command = parse_command(text)
    assert (command.verb, command.reason, command.decision) == (verb, reason, decision)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("/spec2ship", "needs a command"),
        ("/spec2ship frobnicate now", "unknown command `frobnicate`"),
        ("/spec2ship reject", "`reject` needs a reason"),
        ("/spec2ship request-changes   ", "`request-changes` needs what to change"),
        ("/spec2ship override", "`override` needs a decision"),
        ("/spec2ship override squash it", "`override` needs a decision"),
        ("/spec2ship override merge", "`override merge` needs a reason"),
    ],
)
def test_malformed_commands_say_what_to_write(text: str, complaint: str) -> None:
    assert is_command(text)
    with pytest.raises(CommandError, match=complaint):
        parse_command(text)


@pytest.mark.parametrize("text", ["", None, "spec2ship approve", "/spec2shipper approve", "LGTM\n/spec2ship approve"])
def test_other_comments_are_not_commands(text: str | None) -> None:
    assert not is_command(text)


def test_each_verb_sends_the_update_named_in_the_workflow_api() -> None:
    sent = {verb: parse_command(f"/spec2ship {verb.value} merge why").update for verb in Verb}
    assert sent == {
        Verb.approve: APPROVE,
        Verb.reject: REJECT,
        Verb.request_changes: REQUEST_CHANGES,
        Verb.override: OVERRIDE,
        Verb.retry: RETRY,
        Verb.cancel: CANCEL,
    }


# --- delivered commands ----------------------------------------------------------------------


def test_a_writer_approves_the_issues_run(webhook: Webhook) -> None:
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship approve ship it"), delivery="d-1")
    assert response.status_code == 202
    assert response.status == "acted"
    [call] = webhook.runs.calls
    assert (call.kind, call.workflow_id, call.name, call.extra) == ("update", RUN_7, APPROVE, "d-1")
    assert call.arg == HumanAction(actor="maintainer", reason="ship it")
    assert webhook.github.permission_checks == [("octo/shop", "maintainer")]
    assert webhook.github.comments == []


def test_an_admin_overrides(webhook: Webhook) -> None:
    payload = comment_payload("/spec2ship override reject wrong service", login="owner")
    assert webhook.deliver("issue_comment", payload).status_code == 202
    [call] = webhook.runs.calls
    assert call.name == OVERRIDE
    assert call.arg == HumanAction(actor="owner", reason="wrong service", decision="reject")


def test_a_command_on_the_runs_pull_request_steers_the_issues_run(webhook: Webhook) -> None:
    payload = comment_payload("/spec2ship request-changes rename it", number=31, on_pr_body="Adds it.\n\nCloses #7")
    assert webhook.deliver("issue_comment", payload).status_code == 202
    [call] = webhook.runs.calls
    assert (call.workflow_id, call.name) == (RUN_7, REQUEST_CHANGES)


def test_a_pull_request_without_closes_gets_told(webhook: Webhook) -> None:
    payload = comment_payload("/spec2ship approve", number=31, on_pr_body="A change by hand.")
    response = webhook.deliver("issue_comment", payload)
    assert response.status_code == 202
    assert response.status == "refused"
    assert webhook.runs.calls == []
    [reply] = webhook.github.comments
    assert reply.issue_number == 31
    assert "Closes #N" in reply.body


def test_a_reader_is_answered_and_nothing_changes(webhook: Webhook) -> None:
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship approve", login="drive-by"))
    assert response.status_code == 202
    assert response.status == "refused"
    assert webhook.runs.calls == []
    [reply] = webhook.github.comments
    assert (reply.repo, reply.issue_number) == ("octo/shop", 7)
    assert reply.body.startswith("@drive-by ")
    assert "write or admin permission" in reply.body
    assert "yours: read" in reply.body


def test_a_malformed_command_gets_the_usage(webhook: Webhook) -> None:
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship reject"))
    assert response.status_code == 202
    assert webhook.runs.calls == []
    [reply] = webhook.github.comments
    assert "`reject` needs a reason" in reply.body
    assert USAGE in reply.body


def test_a_rejected_update_is_answered_with_the_runs_reason(webhook: Webhook) -> None:
    webhook.runs.rejections[APPROVE] = "the run is not waiting for a human (stage: review)"
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship approve"))
    assert response.status_code == 202
    assert response.status == "refused"
    [reply] = webhook.github.comments
    assert "`approve` was not accepted: the run is not waiting for a human (stage: review)" in reply.body


def test_a_command_without_an_open_run_is_answered(webhook: Webhook) -> None:
    webhook.runs.none_open = True
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship cancel"))
    assert response.status_code == 202
    [reply] = webhook.github.comments
    assert "no open spec2ship run for #7" in reply.body


def test_an_unknown_installation_changes_nothing_and_does_not_crash(webhook: Webhook) -> None:
    webhook.github.unknown_installations.add(999)
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship approve", installation=999))
    assert response.status_code == 202
    assert response.status == "ignored"
    assert "installation 999" in response.reason
    assert webhook.runs.calls == []
    assert webhook.github.comments == []


def test_bots_cannot_command(webhook: Webhook) -> None:
    payload = comment_payload("/spec2ship approve", login="spec2ship[bot]", user_type="Bot")
    assert webhook.deliver("issue_comment", payload).status == "ignored"
    assert webhook.runs.calls == []
    assert webhook.github.permission_checks == []


def test_a_redelivered_command_is_sent_once(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    first = webhook.deliver("issue_comment", comment_payload("/spec2ship approve"), delivery="same")
    again = webhook.deliver("issue_comment", comment_payload("/spec2ship approve"), delivery="same")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.status == "duplicate"
    assert len(webhook.runs.calls) == 1


# --- with the real GitHub forge, on the fake GitHub -------------------------------------------


def test_with_the_real_github_forge_replies_and_permissions_come_from_github(tmp_path: Path) -> None:
    repo = "acme/shop"
    with GitHubServer() as github:
        token = github.add_token("spec2ship-bot")
        github.add_repo(repo)
        github.add_collaborator(repo, "spec2ship-bot", "write")
        github.add_collaborator(repo, "alice", "maintain")
        github.add_collaborator(repo, "trudy", "triage")
        issue = github.add_issue(repo, "Friendlier greeting", INVALID_SPEC_BODY, labels=["spec2ship"])
        auth = GitHubAuth(api_url=github.api_url, token=SecretStr(token))

        def forge(ref: RepoRef) -> IssueForge:
            return GitHubForge(ref, auth, tmp_path, throttle=False)

        runs = FakeRuns()

        async def temporal() -> FakeRuns:
            return runs

        settings = WebhookSettings(secret=SecretStr(SECRET), task_queue="q", spool_path=tmp_path / "spool.sqlite3")
        app = create_app(settings, temporal, forge)
        with TestClient(app) as client:

            def outcome(event: str, payload: dict[str, object]) -> str:
                """Deliver, let the drain finish, and return what it did."""
                delivery = str(uuid.uuid4())
                assert deliver(client, event, payload, delivery=delivery).json()["status"] == "queued"
                client.portal.call(app.state.drain.until_idle)  # type: ignore[union-attr]
                row = client.portal.call(app.state.spool.row, delivery)  # type: ignore[union-attr]
                assert row is not None and row.outcome is not None
                return row.outcome.disposition.value

            labeled = issue_payload(number=issue, body=INVALID_SPEC_BODY, repo=repo, installation=None)
            assert outcome("issues", labeled) == "refused"
            [problems] = github.comments(repo, issue)
            assert "- line 5, `service`: service 'Bad_Name' is not a service name" in problems.body
            assert problems.user.login == "spec2ship-bot"

            def command(text: str, login: str) -> str:
                return outcome("issue_comment", comment_payload(text, login=login, number=issue, repo=repo,
                                                                installation=None))

            for login in ("trudy", "mallory"):  # triage, and no access at all
                assert command("/spec2ship approve", login) == "refused"
                assert "write or admin permission on acme/shop" in github.comments(repo, issue)[-1].body
            assert runs.calls == []

            assert command("/spec2ship approve ok", "alice") == "acted"
            [call] = runs.calls
            assert (call.workflow_id, call.name) == (f"spec2ship/{repo}/issues/{issue}", APPROVE)
            assert len(github.comments(repo, issue)) == 3
