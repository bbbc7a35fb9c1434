"""Signed but hostile deliveries: whatever the body and headers, never a 5xx, a traceback, or a run started
from a name or number GitHub would not have sent.

A signature says the delivery came from someone holding the secret (GitHub, or whoever has it), not that
its payload is well formed: one test per defect found in the webhook before this file existed, then a
property test that drives the app with arbitrary signed bodies and headers.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from webhook_doubles import Webhook, comment_payload, issue_payload

from contracts.github import MAX_ISSUE_NUMBER, RepoFullName
from workers.webhook.jsonlog import FIELD_LIMIT, json_formatter

REPO: TypeAdapter[str] = TypeAdapter(RepoFullName)
HANDLED_EVENTS = ["issues", "issue_comment", "pull_request", "check_suite", "workflow_run"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _pull_request_closed(ref: str = "spec2ship/issue-7-x", body: str | None = None) -> dict[str, Any]:
    return {
        "action": "closed",
        "pull_request": {"number": 31, "head": {"ref": ref, "sha": "abc123"}, "body": body, "merged": True},
        "repository": {"full_name": "octo/shop"},
        "sender": {"login": "maintainer"},
    }


def _check_suite() -> dict[str, Any]:
    return {
        "action": "completed",
        "check_suite": {"head_branch": "spec2ship/issue-7-x", "head_sha": "abc123", "conclusion": "success",
                        "app": {"name": "CI"}, "pull_requests": []},
        "repository": {"full_name": "octo/shop"},
        "sender": {"login": "maintainer"},
    }


def _assert_nothing_started(webhook: Webhook) -> None:
    assert webhook.runs.calls == []
    assert webhook.github.comments == []


# --- one test per defect -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["top", "ignored field", "handled field"])
def test_deep_nesting_is_400_not_a_recursion_error(webhook: Webhook, where: str) -> None:
    payload = json.dumps(issue_payload())
    deep = _nested(100_000)
    body = {
        "top": deep,
        "ignored field": payload[:-1] + f', "extra": {deep}}}',
        "handled field": payload.replace('"body": ', f'"body": {deep}, "x": ', 1),
    }[where]
    response = webhook.deliver("issues", None, body=body.encode())
    assert response.status_code == 400
    assert "not JSON" in response.answer["reason"]
    _assert_nothing_started(webhook)


def test_a_number_of_thousands_of_digits_is_400(webhook: Webhook) -> None:
    body = json.dumps(issue_payload()).replace('"number": 7', '"number": ' + "9" * 5000)
    response = webhook.deliver("issues", None, body=body.encode())
    assert response.status_code == 400
    _assert_nothing_started(webhook)


def test_a_command_longer_than_github_allows_never_reaches_a_run(webhook: Webhook) -> None:
    """GitHub caps a comment at 65,536 characters; a 300,000-character reason would go into the run's history."""
    payload = comment_payload("/spec2ship approve " + "x" * 300_000)
    response = webhook.deliver("issue_comment", payload)
    assert response.status_code == 400
    assert "comment.body" in response.answer["reason"]
    _assert_nothing_started(webhook)


@pytest.mark.parametrize("field", ["login", "title"])
def test_a_lone_surrogate_is_400(webhook: Webhook, field: str) -> None:
    """JSON may spell a lone surrogate (`\\ud800`), which no UTF-8 text can hold: it would break the first
    encoder it meets (a log line, a Temporal payload)."""
    payload = issue_payload()
    body = json.dumps(payload).replace('"author"' if field == "login" else '"Friendlier greeting"', '"\\ud800"')
    response = webhook.deliver("issues", None, body=body.encode())
    assert response.status_code == 400
    _assert_nothing_started(webhook)


@pytest.mark.parametrize("repo", ["../../etc", "octo/..", "octo/.", "../etc/passwd", "octo/shop/../../x",
                                  "octo\\shop", "octo/shop\n", "", "octo", "/octo/shop"])
def test_a_repository_name_github_would_refuse_starts_nothing(webhook: Webhook, repo: str) -> None:
    for event, payload in [
        ("issues", issue_payload(repo=repo)),
        ("issue_comment", comment_payload("/spec2ship approve ok", repo=repo)),
    ]:
        response = webhook.deliver(event, payload)
        assert response.status_code == 400, (event, repo)
        assert "repository.full_name" in response.answer["reason"]
    _assert_nothing_started(webhook)


@pytest.mark.parametrize("number", [-1, 0, 2**31, 2**70, 7.5, "7", True])
def test_an_issue_number_github_would_not_send_starts_nothing(webhook: Webhook, number: Any) -> None:
    payload = issue_payload()
    payload["issue"]["number"] = number
    response = webhook.deliver("issues", payload)
    assert response.status_code == 400
    assert "issue.number" in response.answer["reason"]
    _assert_nothing_started(webhook)


@pytest.mark.parametrize(("ref", "body"), [
    ("spec2ship/issue-0-x", None),
    ("spec2ship/issue-99999999999-x", None),
    ("spec2ship/x", "Closes #0"),
    ("spec2ship/x", "Closes #99999999999"),
    ("spec2ship/issue-\u0663-x", None),  # an Arabic-Indic three, which int() would read as 3
])
def test_an_issue_number_in_a_branch_or_body_that_names_no_issue_signals_nothing(
    webhook: Webhook, ref: str, body: str | None
) -> None:
    response = webhook.deliver("pull_request", _pull_request_closed(ref, body))
    assert (response.status_code, response.status) == (202, "ignored")
    _assert_nothing_started(webhook)


def test_a_command_on_a_pull_request_closing_issue_zero_steers_nothing(webhook: Webhook) -> None:
    response = webhook.deliver("issue_comment", comment_payload("/spec2ship approve", number=31,
                                                                on_pr_body="Closes #0"))
    assert response.status == "refused"
    assert webhook.runs.calls == []
    [reply] = webhook.github.comments
    assert "no `Closes #N`" in reply.body


@pytest.mark.parametrize("header", ["X-GitHub-Delivery", "X-GitHub-Event"])
@pytest.mark.parametrize("signed", [True, False])
def test_long_header_values_are_cut_in_logs(
    webhook: Webhook, caplog: pytest.LogCaptureFixture, header: str, signed: bool
) -> None:
    long = "d" * 100_000
    with caplog.at_level(logging.INFO, logger="spec2ship.webhook"):
        response = webhook.deliver("issues", issue_payload(), signed=signed, headers={header: long})
    assert response.status_code == (400 if signed else 401)
    assert caplog.records
    for record in caplog.records:
        for name in ("delivery", "event"):
            assert len(str(getattr(record, name, ""))) <= FIELD_LIMIT + 30, (name, record.getMessage()[:80])
        assert len(json_formatter().format(record)) < 3000
    assert long not in caplog.text
    _assert_nothing_started(webhook)


# --- arbitrary signed bodies and headers ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)

BASES: list[tuple[str, dict[str, Any]]] = [
    ("issues", issue_payload()),
    ("issues", issue_payload("edited", changes={"body": {"from": "old"}})),
    ("issue_comment", comment_payload("/spec2ship approve looks right")),
    ("issue_comment", comment_payload("/spec2ship override merge why", number=31, on_pr_body="Closes #7")),
    ("pull_request", _pull_request_closed()),
    ("check_suite", _check_suite()),
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real payload with one value somewhere replaced, one key dropped, or a string made hostile."""
    event, base = draw(st.sampled_from(BASES))
    payload = copy.deepcopy(base)
    node: Any = payload
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        change = draw(st.sampled_from(["replace", "drop", "hostile"]))
        if change == "drop" and isinstance(node, dict):
            del node[key]
        elif change == "hostile":
            node[key] = draw(st.sampled_from(["../../etc", "\ud800", "x" * 70_000, "a\nb", "", "spec2ship/issue-0",
                                              "/spec2ship approve", -1, 2**64, 1e308]))
        else:
            node[key] = draw(json_values)
        break
    return event, json.dumps(payload, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


latin1 = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")
bodies = st.one_of(
    mutated(),
    st.builds(lambda value: ("issues", json.dumps(value).encode()), json_values),
    st.tuples(st.sampled_from(HANDLED_EVENTS), st.binary(max_size=300)),
    st.tuples(st.sampled_from(HANDLED_EVENTS), st.integers(150, 5000).map(lambda n: _nested(n).encode())),
)
headers = st.fixed_dictionaries({
    "X-GitHub-Delivery": st.uuids().map(str) | st.text(latin1, max_size=300),
    "Content-Type": st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
}, optional={"X-GitHub-Event": st.sampled_from([*HANDLED_EVENTS, "ping", "star"]) | st.text(latin1, max_size=300)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, sent=headers)
def test_no_signed_body_or_header_gets_a_5xx_or_a_traceback(
    webhook: Webhook, caplog: pytest.LogCaptureFixture, body: tuple[str, bytes], sent: dict[str, str]
) -> None:
    event, raw = body
    caplog.clear()
    wire = {name: value.encode("latin-1") for name, value in sent.items()}  # any byte HTTP allows in a header
    with caplog.at_level(logging.DEBUG):
        response = webhook.deliver(sent.get("X-GitHub-Event", event), None, body=raw, headers=wire,  # type: ignore[arg-type]
                                   delivery=sent["X-GitHub-Delivery"])
    assert response.status_code < 500, response.answer
    assert response.status_code in (200, 202, 400), response.answer
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()[:500]
        assert record.levelno < logging.ERROR, record.getMessage()[:500]
        assert len(json_formatter().format(record)) < 5000
    assert "Traceback" not in caplog.text
    for call in webhook.runs.calls:  # whatever reached Temporal named a run GitHub could have
        named = re.fullmatch(r"spec2ship/(?P<repo>.+)/issues/(?P<number>[0-9]+)", call.workflow_id)
        assert named is not None, call.workflow_id
        REPO.validate_python(named["repo"])
        assert 0 < int(named["number"]) <= MAX_ISSUE_NUMBER
