"""The worker's GitHub connections are shared, and GitHub's rate-limit waits reach Temporal's retries.

`forge_for` keeps one `GitHubAuth` per API URL and credentials and one forge per repository, so a GitHub
App's installation token is minted once, not once per activity call; idle forges are closed, changed
credentials replace the old ones. A rate-limited forge call fails its activity with
`next_retry_delay` set to GitHub's wait, and Temporal's retry honours it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from doubles.github_server import FakeGitHub
from github_world import BOT, INSTALLATION, REPO, SPEC_BODY
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.forge.activities import ForgeActivities
from activities.forge.github import GitHubForge
from activities.forge.registry import GitHubConnections, close_forges, forge_for, github_auth
from contracts.forge import ForgeKind, NotifyInput, RepoRef


@pytest.fixture
def github_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean GitHub environment and no shared connections before and after the test."""
    for name in [n for n in os.environ if n.startswith("SPEC2SHIP_GITHUB")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SPEC2SHIP_GITHUB_THROTTLE", "false")
    close_forges()
    yield monkeypatch
    close_forges()


def use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


class Spy:
    """Records the forges that get closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.closed: list[GitHubForge] = []
        original = GitHubForge.close

        def close(forge: GitHubForge) -> None:
            self.closed.append(forge)
            original(forge)

        monkeypatch.setattr(GitHubForge, "close", close)


# --- one set of credentials, one forge per repository -------------------------------------------------


def test_an_app_mints_one_installation_token_for_many_activity_calls(
    fake: FakeGitHub, app_env: dict[str, str], github_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(github_env, {**app_env, "SPEC2SHIP_DATA_DIR": str(tmp_path)})
    number = fake.add_issue(REPO, "Spec", SPEC_BODY)
    repo = RepoRef(kind=ForgeKind.github, location=REPO, installation_id=INSTALLATION)
    notify = ForgeActivities().notify
    for n in range(5):
        ActivityEnvironment().run(notify, NotifyInput(repo=repo, body=f"note {n}", issue_number=number))

    assert [c.body for c in fake.comments(REPO, number)] == [f"note {n}" for n in range(5)]
    assert len(fake.calls("POST", rf"^/app/installations/{INSTALLATION}/access_tokens$")) == 1
    assert len(fake.calls("GET", r"^/app$")) == 1  # who the bot is: asked once
    assert forge_for(repo) is forge_for(repo)
    assert github_auth() is github_auth()


def test_an_app_without_an_installation_id_looks_it_up_once(
    fake: FakeGitHub, app_env: dict[str, str], github_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(github_env, app_env)
    repo = RepoRef(kind=ForgeKind.github, location=REPO)
    for _ in range(3):
        assert forge_for(repo, workdir_base=tmp_path).read_file("README.md") == "# shop\n"
    assert len(fake.calls("GET", r"^/repos/acme/shop/installation$")) == 1
    assert len(fake.calls("POST", r"/access_tokens$")) == 1


def test_forges_are_per_repository_and_installation(
    fake: FakeGitHub, token: str, github_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(github_env, {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token})
    fake.add_repo("acme/blog")
    fake.add_collaborator("acme/blog", BOT, "write")
    shop = forge_for(RepoRef(kind=ForgeKind.github, location=REPO), workdir_base=tmp_path)
    assert forge_for(RepoRef(kind=ForgeKind.github, location="ACME/Shop"), workdir_base=tmp_path) is shop
    assert forge_for(RepoRef(kind=ForgeKind.github, location="acme/blog"), workdir_base=tmp_path) is not shop
    assert forge_for(RepoRef(kind=ForgeKind.github, location=REPO, installation_id=5), workdir_base=tmp_path) \
        is not shop
    assert forge_for(RepoRef(kind=ForgeKind.github, location=REPO), workdir_base=tmp_path / "other") is not shop


def test_a_rotated_token_replaces_the_credentials_and_closes_their_forges(
    fake: FakeGitHub, token: str, github_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spy = Spy(github_env)
    use(github_env, {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token})
    repo = RepoRef(kind=ForgeKind.github, location=REPO)
    old_auth, old_forge = github_auth(), forge_for(repo, workdir_base=tmp_path)

    github_env.setenv("SPEC2SHIP_GITHUB_TOKEN", fake.add_token(BOT))
    new_forge = forge_for(repo, workdir_base=tmp_path)

    assert github_auth() is not old_auth
    assert new_forge is not old_forge
    assert spy.closed == [old_forge]
    assert new_forge.read_file("README.md") == "# shop\n"  # with the new token


def test_idle_forges_are_closed_and_made_again(fake: FakeGitHub, token: str, github_env: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    spy = Spy(github_env)
    use(github_env, {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token})
    fake.add_repo("acme/blog")
    fake.add_collaborator("acme/blog", BOT, "write")
    now = [0.0]
    connections = GitHubConnections(idle_s=60, max_forges=8, clock=lambda: now[0])
    shop = RepoRef(kind=ForgeKind.github, location=REPO)
    blog = RepoRef(kind=ForgeKind.github, location="acme/blog")

    first = connections.forge(shop, tmp_path)
    now[0] = 59
    assert connections.forge(shop, tmp_path) is first  # used again: its idle time starts over
    now[0] = 59 + 61
    other = connections.forge(blog, tmp_path)  # making a forge sweeps the idle ones
    assert spy.closed == [first]
    again = connections.forge(shop, tmp_path)
    assert again is not first
    connections.clear()  # worker shutdown: everything left is closed
    assert {id(forge) for forge in spy.closed} == {id(first), id(other), id(again)}


def test_beyond_the_cap_the_least_recently_used_forge_is_closed(
    fake: FakeGitHub, token: str, github_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spy = Spy(github_env)
    use(github_env, {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token})
    connections = GitHubConnections(max_forges=2)
    refs = [RepoRef(kind=ForgeKind.github, location=f"acme/r{n}") for n in range(3)]
    first, second = connections.forge(refs[0], tmp_path), connections.forge(refs[1], tmp_path)
    connections.forge(refs[0], tmp_path)  # r0 is now the most recently used
    connections.forge(refs[2], tmp_path)
    assert spy.closed == [second]
    assert connections.forge(refs[0], tmp_path) is first
    connections.clear()


def test_without_credentials_nothing_is_cached(github_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from activities.forge.base import ForgeError

    with pytest.raises(ForgeError, match="no GitHub credentials"):
        forge_for(RepoRef(kind=ForgeKind.github, location=REPO), workdir_base=tmp_path)
    github_env.setenv("SPEC2SHIP_GITHUB_TOKEN", "ghp_now_there_is_one")
    assert github_auth().api_url == "https://api.github.com"


def test_a_bad_throttle_setting_says_what_to_write(github_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from activities.forge.github_auth import GitHubAuthError

    use(github_env, {"SPEC2SHIP_GITHUB_TOKEN": "ghp_x", "SPEC2SHIP_GITHUB_THROTTLE": "sometimes"})
    with pytest.raises(GitHubAuthError, match="SPEC2SHIP_GITHUB_THROTTLE='sometimes': use true or false"):
        forge_for(RepoRef(kind=ForgeKind.github, location=REPO), workdir_base=tmp_path)


# --- rate limits: GitHub's wait becomes the activity's next retry delay -------------------------------


@pytest.fixture
def notify_env(fake: FakeGitHub, token: str, github_env: pytest.MonkeyPatch, tmp_path: Path) -> NotifyInput:
    use(github_env, {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token,
                     "SPEC2SHIP_DATA_DIR": str(tmp_path)})
    number = fake.add_issue(REPO, "Spec", SPEC_BODY)
    return NotifyInput(repo=RepoRef(kind=ForgeKind.github, location=REPO), body="hello", issue_number=number)


def test_a_secondary_rate_limit_sets_the_next_retry_delay(fake: FakeGitHub, notify_env: NotifyInput) -> None:
    fake.rate_limit("POST", r"/issues/\d+/comments$", status=429, retry_after=30)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(ForgeActivities().notify, notify_env)
    assert raised.value.type == "ForgeError"
    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay == timedelta(seconds=30)


def test_a_primary_rate_limit_waits_until_the_reset(fake: FakeGitHub, notify_env: NotifyInput) -> None:
    fake.rate_limit("GET", r"/issues/\d+/comments$", status=403, retry_after=None, reset_in=90)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(ForgeActivities().notify, notify_env)
    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay is not None
    assert timedelta(seconds=60) <= raised.value.next_retry_delay <= timedelta(seconds=91)


def test_a_refusal_is_not_retried_and_names_no_wait(fake: FakeGitHub, notify_env: NotifyInput) -> None:
    fake.fail("POST", r"/issues/\d+/comments$", 404)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(ForgeActivities().notify, notify_env)
    assert raised.value.non_retryable
    assert raised.value.next_retry_delay is None


@workflow.defn(name="NotifyOnce")
class NotifyOnce:
    """Calls `notify` with a short retry interval; returns how long (in workflow time) it took."""

    @workflow.run
    async def run(self, request: NotifyInput) -> float:
        started = workflow.now()
        await workflow.execute_activity(
            "notify", request, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3))
        return (workflow.now() - started).total_seconds()


async def test_temporal_waits_as_long_as_github_asked_before_retrying(
    skip_env: WorkflowEnvironment, fake: FakeGitHub, notify_env: NotifyInput
) -> None:
    """On the time-skipping server: a 1 s retry interval, but GitHub asked for 300 s, and the retry came after it."""
    fake.rate_limit("POST", r"/issues/\d+/comments$", status=429, retry_after=300)
    queue = f"notify-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        async with Worker(skip_env.client, task_queue=queue, workflows=[NotifyOnce], activities=[
                ForgeActivities().notify], activity_executor=pool, workflow_runner=UnsandboxedWorkflowRunner()):
            took = await skip_env.client.execute_workflow(
                NotifyOnce.run, notify_env, id=f"notify-{uuid.uuid4()}", task_queue=queue)
    assert took >= 300
    assert len(fake.calls("POST", r"/issues/\d+/comments$")) == 2
    assert [c.body for c in fake.comments(REPO, notify_env.issue_number or 0)] == ["hello"]
