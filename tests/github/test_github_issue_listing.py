"""The fake GitHub's issue listing (GET /repos/{owner}/{repo}/issues) behaves as GitHub documents it, and
every answer validates against GitHub's OpenAPI description (the `fake` fixture checks on teardown)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from doubles.github_server import FakeGitHub
from doubles.github_state import now
from github_world import BOT, REPO

from activities.forge.github import GitHubForge
from activities.forge.github_auth import GitHubAuth
from contracts.forge import ForgeKind, RepoRef


def listing(fake: FakeGitHub, token: str, **params: str) -> requests.Response:
    return requests.get(f"{fake.api_url}/repos/{REPO}/issues", params=params,
                        headers={"Authorization": f"token {token}"}, timeout=10)


def numbers(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["number"] for item in response.json()]


@pytest.fixture
def issues(fake: FakeGitHub, token: str, auth: GitHubAuth) -> dict[str, int]:
    """#1 spec2ship+bug by alice, #2 Spec2Ship by bob (2 comments), #3 bug (closed), #4 a labelled PR."""
    made = {
        "both": fake.add_issue(REPO, "one", "a", labels=["spec2ship", "bug"], author="alice"),
        "spec": fake.add_issue(REPO, "two", "b", labels=["Spec2Ship"], author="bob"),
        "closed": fake.add_issue(REPO, "three", "c", labels=["bug"]),
    }
    fake.add_comment(REPO, made["spec"], "first")
    fake.add_comment(REPO, made["spec"], "second")
    fake.close_issue(REPO, made["closed"])
    fake.push_commit(REPO, "feature", {"f.txt": "f\n"})
    forge = GitHubForge(RepoRef(kind=ForgeKind.github, location=REPO), auth, fake.root, throttle=False)
    pr = forge.open_pull_request("feature", "A PR", "body")
    forge.set_labels(None, pr, add=["spec2ship"], remove=[])
    made["pr"] = pr.number
    return made


def test_open_issues_and_pull_requests_newest_first_by_default(
    fake: FakeGitHub, token: str, issues: dict[str, int]
) -> None:
    assert numbers(listing(fake, token)) == [issues["pr"], issues["spec"], issues["both"]]
    pulls = [item["number"] for item in listing(fake, token).json() if "pull_request" in item]
    assert pulls == [issues["pr"]]


def test_labels_must_all_match_whatever_their_case(fake: FakeGitHub, token: str, issues: dict[str, int]) -> None:
    assert numbers(listing(fake, token, labels="spec2ship")) == [issues["pr"], issues["spec"], issues["both"]]
    assert numbers(listing(fake, token, labels="SPEC2SHIP,bug")) == [issues["both"]]
    assert numbers(listing(fake, token, labels="bug", state="all")) == [issues["closed"], issues["both"]]
    assert numbers(listing(fake, token, labels="nothing")) == []


def test_state_sort_direction_since_and_creator(fake: FakeGitHub, token: str, issues: dict[str, int]) -> None:
    assert numbers(listing(fake, token, state="closed")) == [issues["closed"]]
    assert len(numbers(listing(fake, token, state="all"))) == 4
    assert numbers(listing(fake, token, sort="created", direction="asc")) == [
        issues["both"], issues["spec"], issues["pr"]]
    assert numbers(listing(fake, token, sort="comments"))[0] == issues["spec"]
    assert numbers(listing(fake, token, creator="alice")) == [issues["both"]]
    later = (now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert numbers(listing(fake, token, since=later)) == []


def test_pages_with_a_link_header(fake: FakeGitHub, token: str, auth: GitHubAuth) -> None:
    made = [fake.add_issue(REPO, f"issue {n}", "body", labels=["spec2ship"]) for n in range(35)]
    first = listing(fake, token, labels="spec2ship", direction="asc")
    assert numbers(first) == made[:30]
    assert 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    with auth.client(throttle=False) as github:
        listed = github.get_repo(REPO).get_issues(state="open", labels=["spec2ship"], sort="created",
                                                  direction="asc")
        assert [issue.number for issue in listed] == made  # PyGithub followed the Link header
    assert len(fake.calls("GET", rf"^/repos/{REPO}/issues$")) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [({"state": "merged"}, "state"), ({"sort": "votes"}, "sort"), ({"direction": "up"}, "direction"),
     ({"since": "yesterday"}, "since"), ({"assignee": BOT}, "assignee"), ({"milestone": "*"}, "milestone")],
)
def test_bad_or_unsupported_filters_are_422(fake: FakeGitHub, token: str, params: dict[str, str], field: str) -> None:
    answer = listing(fake, token, **params)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field
    assert fake.calls("GET", rf"^/repos/{REPO}/issues$")[-1] in fake.contract_checked or fake.contract is None


def test_a_repository_the_token_cannot_see_is_404(fake: FakeGitHub, token: str) -> None:
    fake.add_repo("acme/secret")
    answer = requests.get(f"{fake.api_url}/repos/acme/secret/issues", headers={"Authorization": f"token {token}"},
                          timeout=10)
    assert answer.status_code == 404
