"""The factory against the fake GitHub: `GitHubIssues` lists the ready issues through the real PyGithub
client (pages, labels, no pull requests, GitHub App installations), and a FactoryRun on the dev server
starts runs for exactly those issues. Every GitHub answer validates against GitHub's OpenAPI description."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from doubles.github_keys import app_key_pair
from doubles.github_openapi import GitHubOpenApi, NpmUnavailable
from doubles.github_server import FakeGitHub
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.factory.activities import FactoryActivities, GitHubIssues
from activities.forge.github import GitHubForge
from activities.forge.github_auth import GitHubAuth
from activities.forge.registry import close_forges
from contracts.activities import implementations
from contracts.factory import FactoryReport, FactoryRunInput, ListReadyIssuesInput, ReadyIssue, SkippedIssue, StartedRun
from contracts.forge import STATUS_LABELS, ForgeKind, RepoRef, SpecSource
from contracts.names import FACTORY_RUN, SPEC_TO_SHIP
from contracts.runs import SpecToShipInput
from workflows.factory_run import FactoryRun

BOT = "spec2ship-bot"
LABEL = "spec2ship"


@pytest.fixture(scope="module")
def contract() -> GitHubOpenApi | None:
    try:
        return GitHubOpenApi.fetch()
    except NpmUnavailable:
        return None  # the fake still runs; test_github_double_contract.py skips with the reason


@pytest.fixture
def fake(contract: GitHubOpenApi | None) -> Iterator[FakeGitHub]:
    with FakeGitHub(contract=contract) as server:
        yield server
        assert server.contract_failures == [], "\n".join(server.contract_failures)


@pytest.fixture
def repo(fake: FakeGitHub) -> str:
    """A repository unique to the test (workflow ids on the shared dev server are global)."""
    name = f"acme/shop-{uuid.uuid4().hex[:8]}"
    fake.add_repo(name)
    return name


@pytest.fixture
def auth(fake: FakeGitHub, repo: str) -> GitHubAuth:
    token = fake.add_token(BOT)
    fake.add_collaborator(repo, BOT, "write")
    return GitHubAuth(api_url=fake.api_url, token=SecretStr(token))


def pull_request_with_label(fake: FakeGitHub, auth: GitHubAuth, repo: str, tmp_path: Path) -> int:
    fake.push_commit(repo, "feature", {"f.txt": "f\n"})
    with GitHubForge(RepoRef(kind=ForgeKind.github, location=repo), auth, tmp_path, throttle=False) as forge:
        pr = forge.open_pull_request("feature", "A person's PR", "body")
        forge.set_labels(None, pr, add=[LABEL], remove=[])
    return pr.number


def test_ready_issues_are_open_labelled_issues_oldest_first_over_pages(
    fake: FakeGitHub, repo: str, auth: GitHubAuth, tmp_path: Path
) -> None:
    ready = [fake.add_issue(repo, f"spec {n}", "body", labels=[LABEL, "area/api"]) for n in range(32)]
    fake.add_issue(repo, "not for the factory", "body", labels=["bug"])
    closed = fake.add_issue(repo, "done already", "body", labels=[LABEL])
    fake.close_issue(repo, closed)
    pull_request_with_label(fake, auth, repo, tmp_path)

    found = GitHubIssues(auth, throttle=False).ready_issues(repo, LABEL)

    assert found == [ReadyIssue(repo=repo, number=n, title=f"spec {i}") for i, n in enumerate(ready)]
    [first_page, *_] = fake.calls("GET", rf"^/repos/{repo}/issues$")
    assert sorted(first_page.query.split("&")) == ["direction=asc", "labels=spec2ship", "sort=created", "state=open"]
    assert len(fake.calls("GET", rf"^/repos/{repo}/issues$")) == 2  # 30 a page


def test_with_a_github_app_the_shared_credentials_name_the_installation(
    fake: FakeGitHub, repo: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    private, public = app_key_pair()
    fake.add_app(31, "spec2ship-factory", public)
    fake.install_app(31, 3100, [repo])
    (tmp_path / "app.pem").write_text(private)
    for name in [n for n in os.environ if n.startswith("SPEC2SHIP_GITHUB")]:
        monkeypatch.delenv(name)
    for name, value in {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_APP_ID": "31",
                        "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE": str(tmp_path / "app.pem"),
                        "SPEC2SHIP_GITHUB_THROTTLE": "false"}.items():
        monkeypatch.setenv(name, value)
    close_forges()
    number = fake.add_issue(repo, "spec", "body", labels=[LABEL])
    try:
        issues = GitHubIssues()  # the worker's shared credentials, read from the environment on first use
        for _ in range(3):  # three scheduled passes
            assert issues.ready_issues(repo, LABEL) == [
                ReadyIssue(repo=repo, number=number, title="spec", installation_id=3100)]
    finally:
        close_forges()
    assert len(fake.calls("POST", r"^/app/installations/3100/access_tokens$")) == 1
    assert len(fake.calls("GET", rf"^/repos/{repo}/installation$")) == 1


def test_a_repository_out_of_reach_is_a_problem_and_a_rate_limit_a_retry(
    dev_env: WorkflowEnvironment, fake: FakeGitHub, repo: str, auth: GitHubAuth
) -> None:
    number = fake.add_issue(repo, "spec", "body", labels=[LABEL])
    factory = FactoryActivities(dev_env.client, issues=GitHubIssues(auth, throttle=False))
    request = ListReadyIssuesInput(repos=["acme/gone", repo], label=LABEL)

    result = ActivityEnvironment().run(factory.list_ready_issues, request)
    assert [issue.number for issue in result.issues] == [number]
    [problem] = result.problems
    assert problem.repo == "acme/gone" and "(404)" in problem.reason

    fake.rate_limit("GET", rf"^/repos/{repo}/issues$", status=429, retry_after=45)
    with pytest.raises(ApplicationError) as limited:
        ActivityEnvironment().run(factory.list_ready_issues, request)
    assert not limited.value.non_retryable
    assert limited.value.next_retry_delay == timedelta(seconds=45)


async def factory_pass(client: Client, auth: GitHubAuth, repo: str, task_queue: str, runs_queue: str,
                       max_in_flight: int) -> FactoryReport:
    """One FactoryRun over `repo` with the real activities on the fake GitHub; runs start on `runs_queue`."""
    factory = FactoryActivities(client, issues=GitHubIssues(auth, throttle=False))
    with ThreadPoolExecutor(max_workers=2) as pool:
        async with Worker(client, task_queue=task_queue, workflows=[FactoryRun], activities=implementations(factory),
                          activity_executor=pool):
            report: FactoryReport = await client.execute_workflow(
                FACTORY_RUN, FactoryRunInput(repos=[repo], label=LABEL, max_in_flight=max_in_flight,
                                             task_queue=runs_queue),
                id=f"factory-{uuid.uuid4()}", task_queue=task_queue, result_type=FactoryReport)
    return report


async def test_a_factory_run_starts_the_issues_github_lists_as_ready(
    dev_env: WorkflowEnvironment, fake: FakeGitHub, repo: str, auth: GitHubAuth, task_queue: str, tmp_path: Path
) -> None:
    client = dev_env.client
    oldest, middle, newest = (fake.add_issue(repo, f"spec {n}", "body", labels=[LABEL]) for n in range(3))
    fake.add_issue(repo, "unlabelled", "body")
    pull = pull_request_with_label(fake, auth, repo, tmp_path)
    runs_queue = f"{task_queue}-runs"  # nobody polls it: the started runs stay in flight

    report = await factory_pass(client, auth, repo, task_queue, runs_queue, max_in_flight=2)

    def run_id(number: int) -> str:
        return f"spec2ship/{repo}/issues/{number}"

    assert report.started == [StartedRun(repo=repo, issue=n, workflow_id=run_id(n)) for n in (oldest, middle)]
    assert report.skipped == [
        SkippedIssue(repo=repo, issue=newest, reason=f"2 run(s) already in flight in {repo}; next schedule")]
    assert report.problems == []
    for number in (oldest, middle):
        handle = client.get_workflow_handle(run_id(number))
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")
    assert pull not in {run.issue for run in report.started} | {skip.issue for skip in report.skipped}


async def test_the_schedule_is_the_webhooks_safety_net_and_restarts_no_run_that_ended(
    dev_env: WorkflowEnvironment, fake: FakeGitHub, repo: str, auth: GitHubAuth, task_queue: str
) -> None:
    """A labelled open issue with no run gets one (its delivery was lost, or never sent); one whose run ended
    does not, whether Temporal still holds that run or has forgotten it and only the issue's label tells."""
    client = dev_env.client
    missed = fake.add_issue(repo, "labelled while the webhook was down", "body", labels=[LABEL])
    forgotten = fake.add_issue(repo, "rejected long ago", "body", labels=[LABEL, STATUS_LABELS["rejected"]])
    ended = fake.add_issue(repo, "rejected last week", "body", labels=[LABEL])
    runs_queue = f"{task_queue}-runs"

    def run_id(number: int) -> str:
        return f"spec2ship/{repo}/issues/{number}"

    run_input = SpecToShipInput(repo=RepoRef(kind=ForgeKind.github, location=repo), spec=SpecSource(kind="issue"))
    earlier = await client.start_workflow(SPEC_TO_SHIP, run_input, id=run_id(ended), task_queue=runs_queue)
    await earlier.terminate("test: the run ended")

    listed = GitHubIssues(auth, throttle=False).ready_issues(repo, LABEL)
    assert [(issue.number, issue.status_label) for issue in listed] == [
        (missed, None), (forgotten, STATUS_LABELS["rejected"]), (ended, None)]

    report = await factory_pass(client, auth, repo, task_queue, runs_queue, max_in_flight=5)

    assert report.started == [StartedRun(repo=repo, issue=missed, workflow_id=run_id(missed))]
    assert report.skipped == [
        SkippedIssue(repo=repo, issue=forgotten, reason="it had a run (it carries 'spec2ship:rejected'), which "
                     "Temporal no longer holds; label the issue again to start a new one"),
        SkippedIssue(repo=repo, issue=ended, reason=f"its run terminated: {run_id(ended)}"),
    ]
    await client.get_workflow_handle(run_id(missed)).terminate("test over")
