"""Contract test: every example payload in `@octokit/webhooks-examples@7.6.1`, signed and delivered.

Two passes. As published, every example must be answered 2xx (200 for ping, 202 otherwise) with no
5xx and no 4xx; none of them is addressed to spec2ship (no factory label, no command, no spec2ship
branch), so each is ignored without a Temporal call. Then every example of a handled event/action
is aimed at spec2ship by changing only what makes it ours (the label, the comment, the branch, the
edited field) and must make the matching Temporal call with what the payload carries. The counts by
group are printed.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from doubles.npm_data import NpmDataUnavailable, npm_package_dir
from webhook_doubles import VALID_SPEC_BODY, Webhook, build_webhook

from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import APPROVE, CI_COMPLETED, PR_CLOSED, SPEC_CHANGED
from contracts.runs import ForgeEvent, HumanAction, SpecToShipInput

PACKAGE = "@octokit/webhooks-examples"
VERSION = "7.6.1"

HANDLED = {
    ("issues", "labeled"),
    ("issues", "edited"),
    ("issue_comment", "created"),
    ("pull_request", "closed"),
    ("check_suite", "completed"),
    ("workflow_run", "completed"),
}


@dataclass(frozen=True)
class Example:
    source: str  # api.github.com, ghes-35, ...
    event: str
    index: int
    payload: dict[str, Any]

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.event, self.action)

    @property
    def name(self) -> str:
        return f"{self.source}/{self.event}.{self.action}#{self.index}"

    @property
    def repo(self) -> str:
        return str(self.payload["repository"]["full_name"])

    def run_id(self, issue_number: int) -> str:
        return f"spec2ship/{self.repo}/issues/{issue_number}"


def _examples() -> list[Example]:
    try:
        package = npm_package_dir(PACKAGE, VERSION)
    except NpmDataUnavailable as error:
        pytest.skip(f"{PACKAGE}@{VERSION} unavailable: {error}")
    examples = []
    for index_file in sorted(package.glob("*/index.json")):
        for definition in json.loads(Path(index_file).read_text(encoding="utf-8")):
            for number, payload in enumerate(definition["examples"]):
                examples.append(Example(index_file.parent.name, definition["name"], number, payload))
    return examples


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    found = _examples()
    assert len(found) > 700, f"expected the whole package, found {len(found)} examples"
    return found


@pytest.fixture
def app() -> Iterator[Webhook]:
    made = build_webhook()
    made.github.permissions = {}
    yield made
    made.close()


@dataclass(frozen=True)
class Answer:
    status: str  # what the drain did (acted, refused, ignored) or, when nothing was spooled, the answer
    workflow_id: str | None


def _deliver(app: Webhook, example: Example, payload: dict[str, Any]) -> Answer:
    app.runs.calls.clear()
    app.github.comments.clear()
    response = app.deliver(example.event, payload)
    assert response.status_code < 500, f"{example.name}: {response.status_code} {response.answer}"
    expected = 200 if example.event == "ping" else 202
    assert response.status_code == expected, f"{example.name}: {response.status_code} {response.answer}"
    return Answer(response.status, response.workflow_id)


def _print_counts(capsys: pytest.CaptureFixture[str], title: str, counts: Counter[str]) -> None:
    with capsys.disabled():
        print(f"\n{title}: {sum(counts.values())} deliveries")
        for group, count in sorted(counts.items()):
            print(f"  {group:<58} {count:>4}")


def test_every_example_as_published_is_answered_2xx_and_none_is_for_spec2ship(
    examples: list[Example], app: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    counts: Counter[str] = Counter()
    for example in examples:
        answer = _deliver(app, example, example.payload)
        if example.event == "ping":
            assert answer.status == "pong", example.name
            counts["ping: 200 pong"] += 1
            continue
        assert answer.status == "ignored", f"{example.name}: {answer}"
        assert app.runs.calls == [], example.name
        assert app.github.comments == [], example.name
        group = f"handled: 202 ignored ({example.event}.{example.action})" if example.key in HANDLED else None
        counts[group or "not handled: 202 ignored"] += 1
    _print_counts(capsys, f"{PACKAGE}@{VERSION}, as published", counts)
    assert sum(counts.values()) == len(examples)


def _aim(example: Example) -> tuple[dict[str, Any], str, str, Any]:
    """The example changed only where needed to address spec2ship; returns (payload, kind, name, arg)."""
    payload = copy.deepcopy(example.payload)
    sender = payload["sender"]["login"]
    match example.key:
        case ("issues", "labeled"):
            payload["label"]["name"] = "spec2ship"
            payload["issue"]["body"] = VALID_SPEC_BODY
            payload["issue"]["state"] = "open"
            number = payload["issue"]["number"]
            installation = payload.get("installation", {}).get("id")
            run_input = SpecToShipInput(
                repo=RepoRef(kind=ForgeKind.github, location=example.repo, installation_id=installation),
                spec=SpecSource(kind="issue", issue_number=number),
                requested_by=sender,
                issue_number=number,
            )
            return payload, "start", "SpecToShip", (example.run_id(number), run_input)
        case ("issues", "edited"):
            payload["changes"] = {"body": {"from": "the spec before"}}
            number = payload["issue"]["number"]
            event = ForgeEvent(kind="spec_changed", actor=sender, url=payload["issue"].get("html_url"))
            return payload, "signal", SPEC_CHANGED, (example.run_id(number), event)
        case ("issue_comment", "created"):
            payload["comment"]["body"] = "/spec2ship approve checked the evidence"
            payload["comment"]["user"]["type"] = "User"
            login = payload["comment"]["user"]["login"]
            number = payload["issue"]["number"]
            action = HumanAction(actor=login, reason="checked the evidence")
            return payload, "update", APPROVE, (example.run_id(number), action)
        case ("pull_request", "closed"):
            number = payload["pull_request"]["number"] + 1000
            payload["pull_request"]["head"]["ref"] = f"spec2ship/issue-{number}-from-the-examples"
            pr = payload["pull_request"]
            event = ForgeEvent(
                kind="pr_closed",
                merged=bool(pr["merged"]),
                actor=sender,
                head_sha=pr["head"]["sha"],
                url=pr["html_url"],
            )
            return payload, "signal", PR_CLOSED, (example.run_id(number), event)
        case ("check_suite", "completed"):
            suite = payload["check_suite"]
            suite["head_branch"] = "spec2ship/issue-12-from-the-examples"
            for pull in suite["pull_requests"]:
                pull["head"]["ref"] = "spec2ship/issue-12-from-the-examples"
            event = ForgeEvent(
                kind="ci_completed",
                conclusion=suite["conclusion"],
                head_sha=suite["head_sha"],
                name=suite["app"]["name"],
                actor=sender,
                url=suite["url"],
            )
            return payload, "signal", CI_COMPLETED, (example.run_id(12), event)
        case ("workflow_run", "completed"):
            run = payload["workflow_run"]
            run["head_branch"] = "spec2ship/issue-12-from-the-examples"
            event = ForgeEvent(
                kind="ci_completed",
                conclusion=run["conclusion"],
                head_sha=run["head_sha"],
                name=run["name"],
                actor=sender,
                url=run["html_url"],
            )
            return payload, "signal", CI_COMPLETED, (example.run_id(12), event)
    raise AssertionError(f"{example.name} is not a handled event/action")


def test_every_handled_example_aimed_at_spec2ship_acts(
    examples: list[Example], app: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    counts: Counter[str] = Counter()
    for example in (e for e in examples if e.key in HANDLED):
        payload, kind, name, (workflow_id, arg) = _aim(example)
        if kind == "update":
            app.github.permissions[payload["comment"]["user"]["login"]] = "write"
        answer = _deliver(app, example, payload)
        assert answer.status == "acted", f"{example.name}: {answer}"
        assert answer.workflow_id == workflow_id, example.name
        [call] = app.runs.calls
        assert (call.kind, call.workflow_id, call.name, call.arg) == (kind, workflow_id, name, arg), example.name
        if kind == "start":
            assert call.extra == app.settings.task_queue
        counts[f"202 acted: {kind} {name} ({example.event}.{example.action})"] += 1
    _print_counts(capsys, f"{PACKAGE}@{VERSION}, handled examples aimed at spec2ship", counts)
    assert set(key for key in HANDLED) == {e.key for e in examples if e.key in HANDLED}, "an event went missing"


def test_a_labeled_example_with_its_own_body_is_answered_with_the_spec_problems(
    examples: list[Example], app: Webhook
) -> None:
    labeled = [e for e in examples if e.key == ("issues", "labeled")]
    assert labeled
    for example in labeled:
        payload = copy.deepcopy(example.payload)
        payload["label"]["name"] = "spec2ship"
        payload["issue"]["state"] = "open"
        answer = _deliver(app, example, payload)
        assert answer.status == "refused", example.name
        assert app.runs.calls == []
        [reply] = app.github.comments
        assert reply.issue_number == payload["issue"]["number"]
        assert "- line 1, `<spec>`: no spec found" in reply.body
