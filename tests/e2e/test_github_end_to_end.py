"""spec2ship on GitHub, end to end: the real workers on the Temporal dev server, the real GitHub forge on the
fake GitHub (REST held to GitHub's OpenAPI description, git over smart HTTP), and the webhook app served in
this event loop, receiving signed deliveries built from the fake's own JSON.

1. A labelled issue ships: the run writes the change (scripted coder picked from `spec2ship.yaml` by role),
   pushes the branch, opens a PR linked to the issue, posts its evidence, and waits at L3 with
   `spec2ship:awaiting-human`. A reader's `/spec2ship approve` gets a reply and changes nothing; a
   collaborator's merges the PR (label `spec2ship:merged`, status success). A redelivered label starts
   no second run, in the same server (its spool knows the delivery) or another replica (Temporal does).
2. A PR merged by a person while the run waits ends the run as merged (the coder comes from
   SPEC2SHIP_DEFAULT_CODER, the fallback when the registry has no model for the role).
3. A FactoryRun lists a labelled issue whose spec is invalid; its run answers on the issue, naming
   each problem and its line.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from doubles.github_openapi import GitHubOpenApi, NpmUnavailable
from doubles.github_server import FakeGitHub
from doubles.http_server import served
from e2e_world import (
    BOT,
    LABEL,
    LEAD,
    MAINTAINER,
    READER,
    SECRET,
    Delivery,
    GitHubWorld,
    coder_script,
    deliver,
    eventually,
    spec_body,
    status_when,
)
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.forge.github import EVIDENCE_MARKER, STATUS_CONTEXT
from activities.forge.registry import close_forges
from contracts.factory import FactoryReport, FactoryRunInput, StartedRun
from contracts.forge import STATUS_LABELS
from contracts.names import EVIDENCE, FACTORY_RUN
from contracts.runs import RunState, RunStatus
from workers.webhook.app import create_app
from workers.webhook.settings import WebhookSettings
from workers.worker import build_workers

pytestmark = pytest.mark.slow

README = "# shop\n\nThe shop service.\n"
POLICY = "default_autonomy: L2\nservices:\n  {service}: {{autonomy: L3}}\nescalation: {{owners: [maintainer]}}\n"


@dataclass
class E2E:
    github: GitHubWorld
    client: Client
    webhook: httpx.AsyncClient
    app: FastAPI
    queue: str
    service: str
    team: str
    folder: Path

    async def handled(self, delivery: Delivery, app: FastAPI | None = None,
                      webhook: httpx.AsyncClient | None = None) -> dict[str, Any]:
        """Deliver, wait until the webhook's drain is idle, and return what was done: the drain's outcome
        (`acted`, `refused`, `ignored`, with its reason and ids) or, when nothing was spooled, the answer."""
        app, webhook = app or self.app, webhook or self.webhook
        answer = await deliver(webhook, delivery)
        await app.state.drain.until_idle()
        row = await app.state.spool.row(delivery.headers()["X-GitHub-Delivery"])
        if answer["status"] != "queued" or row is None or row.outcome is None:
            return answer
        return {"status": row.outcome.disposition.value, **row.outcome.model_dump(exclude={"disposition", "replies"})}

    @property
    def fake(self) -> FakeGitHub:
        return self.github.fake

    def repo(self) -> str:
        policy = POLICY.format(service=self.service)
        return self.github.new_repo({"README.md": README, ".spec2ship/policy.yaml": policy})

    def handle(self, repo: str, number: int) -> WorkflowHandle[object, RunStatus]:
        return self.client.get_workflow_handle(f"spec2ship/{repo}/issues/{number}", result_type=RunStatus)


@pytest.fixture(scope="module")
def contract() -> GitHubOpenApi | None:
    try:
        return GitHubOpenApi.fetch()
    except NpmUnavailable:
        return None  # the fake still runs; tests/github/test_github_double_contract.py skips with the reason


@pytest_asyncio.fixture(scope="module")
async def e2e(
    dev_env: WorkflowEnvironment, contract: GitHubOpenApi | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[E2E]:
    """One world for the module: the queue, workers, webhook and fake GitHub outlive each test, as the
    entity workflows (team budget, service ledger, model evidence) the runs create outlive a run."""
    folder = tmp_path_factory.mktemp("e2e")
    suffix = uuid.uuid4().hex[:6]
    queue = f"e2e-{suffix}"
    (folder / "coder.yaml").write_text(coder_script(README))
    (folder / "spec2ship.yaml").write_text(
        "models:\n  - {name: scripted-coder, provider: scripted, script: coder.yaml, roles: [coder]}\n")
    with FakeGitHub(contract=contract) as fake, pytest.MonkeyPatch.context() as env:
        github = GitHubWorld(fake)
        for name in [n for n in os.environ if n.startswith(("SPEC2SHIP_GITHUB", "SPEC2SHIP_DEFAULT_"))]:
            env.delenv(name)
        for name, value in {
            "SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": github.bot_token,
            "SPEC2SHIP_GITHUB_THROTTLE": "false", "SPEC2SHIP_TASK_QUEUE": queue,
            "SPEC2SHIP_DATA_DIR": str(folder / "data"), "SPEC2SHIP_CONFIG": str(folder / "spec2ship.yaml"),
            "SPEC2SHIP_WEBHOOK_SECRET": SECRET, "SPEC2SHIP_FACTORY_LABEL": LABEL,
        }.items():
            env.setenv(name, value)
        close_forges()
        workers = build_workers(dev_env.client, data_dir=folder / "data", task_queue=queue, identity=f"e2e-{suffix}")
        running = [asyncio.create_task(worker.run()) for worker in workers]

        async def temporal() -> Client:
            return dev_env.client

        app = create_app(WebhookSettings.from_env(), temporal)
        try:
            async with served(app, timeout=30) as webhook:
                yield E2E(github, dev_env.client, webhook, app, queue, f"shop-{suffix}", f"payments-{suffix}", folder)
        finally:
            await app.state.drain.stop()
            app.state.spool.close()
            await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
            for task in running:
                task.cancel()
            close_forges()


@pytest.fixture
def world(e2e: E2E) -> Iterator[E2E]:
    """Each test: every answer the fake GitHub gave validates against GitHub's OpenAPI description."""
    before = len(e2e.fake.contract_failures)
    yield e2e
    assert e2e.fake.contract_failures[before:] == [], "\n".join(e2e.fake.contract_failures[before:])


async def test_a_labelled_issue_ships_and_a_collaborator_approves_it(world: E2E) -> None:
    fake, github = world.fake, world.github
    repo = world.repo()
    title = "Document the health endpoint"
    issue = fake.add_issue(repo, title, spec_body(world.service, world.team), labels=[LABEL], author="alice")

    labeled = await github.labeled(repo, issue, by=LEAD)
    started = await world.handled(labeled)
    assert (started["status"], started["workflow_id"]) == ("acted", f"spec2ship/{repo}/issues/{issue}")
    handle = world.handle(repo, issue)
    waiting = await status_when(handle, lambda s: s.has_decision, "the run's decision")
    assert waiting.state is RunState.awaiting_human, waiting.reasons

    # The spec took the issue's title; the gate at L3 waits for a person.
    assert (waiting.spec_title, waiting.service, waiting.decision) == (title, world.service, "escalate")
    assert [(c.id, c.status.value) for c in waiting.checks] == [("readme-mentions-health", "passed")]
    # The branch is on GitHub, and the PR is linked to the issue.
    [pull] = fake.pulls(repo)
    assert pull.pull is not None and pull.pull.head_ref.startswith(f"spec2ship/issue-{issue}-")
    assert (pull.title, pull.user.login) == (title, BOT)
    assert f"Closes #{issue}" in (pull.body or "")
    assert b"GET /health" in (fake.file_at(repo, pull.pull.head_ref, "README.md") or b"")
    assert waiting.pr is not None and waiting.pr.number == pull.number
    # Evidence on the PR, once; status labels on the issue and the PR; a pending gate status on the head.
    [evidence] = [body for body in github.bot_comments(repo, pull.number) if body.startswith(EVIDENCE_MARKER)]
    assert "### Decision: **escalate** (L3)" in evidence and "`readme-mentions-health`" in evidence
    assert "- coder: `scripted-coder`" in evidence  # picked from spec2ship.yaml by its role
    assert evidence.count(EVIDENCE_MARKER) == 1
    for number in (issue, pull.number):
        assert STATUS_LABELS["awaiting_human"] in fake.labels(repo, number)
    head = fake.head_sha(repo, pull.number)
    assert [(s.state, s.context) for s in fake.statuses(repo, head)][-1] == ("pending", STATUS_CONTEXT)
    # The run says so on the PR, naming the owners from the policy (posted just after it starts waiting).
    await eventually(lambda: [b for b in github.bot_comments(repo, pull.number)
                              if "waiting for a human decision" in b and "@maintainer" in b], "the waiting note")

    # A reader cannot steer: a reply on the thread, nothing changes.
    refused = await world.handled(await github.commented(repo, issue, "/spec2ship approve", by=READER))
    assert refused["status"] == "refused"
    reply = await eventually(
        lambda: next((b for b in github.bot_comments(repo, issue) if b.startswith(f"@{READER}")), None),
        "the reply to the reader")
    assert f"only people with write or admin permission on {repo} can steer spec2ship runs (yours: read)" in reply
    still = await status_when(handle, lambda s: True, "the status")
    assert (still.state, still.human_actions) == (RunState.awaiting_human, [])
    assert not fake.pulls(repo)[0].pull.merged  # type: ignore[union-attr]

    # Four eyes: whoever labelled the issue asked for the change, and cannot approve it themselves.
    own = await world.handled(await github.commented(repo, pull.number, "/spec2ship approve", by=LEAD))
    assert own["status"] == "refused"
    own_reply = await eventually(
        lambda: next((b for b in github.bot_comments(repo, pull.number) if b.startswith(f"@{LEAD}")), None),
        "the four-eyes reply")
    assert f"four eyes: {LEAD} asked for this change, so someone else must approve it" in own_reply
    assert (await status_when(handle, lambda s: True, "the status")).state is RunState.awaiting_human

    # Another collaborator with write permission approves, on the PR: the run merges it.
    approve = await github.commented(repo, pull.number, "/spec2ship approve evidence reviewed", by=MAINTAINER)
    assert (await world.handled(approve))["status"] == "acted"
    done = await asyncio.wait_for(handle.result(), 120)
    assert done.state is RunState.merged, done.reasons
    assert done.human_actions == [f"approve by {MAINTAINER}: evidence reviewed"]
    [merged] = fake.pulls(repo)
    assert merged.pull is not None and merged.pull.merged and merged.state == "closed"
    assert fake.branch_sha(repo, "main") == merged.pull.merge_commit_sha
    assert b"GET /health" in (fake.file_at(repo, "main", "README.md") or b"")
    for number in (issue, pull.number):
        labels = fake.labels(repo, number)
        assert STATUS_LABELS["merged"] in labels and STATUS_LABELS["awaiting_human"] not in labels
    assert [s.state for s in fake.statuses(repo, head) if s.context == STATUS_CONTEXT][-1] == "success"
    assert fake.issue(repo, issue).state == "closed"  # `Closes #N` did its part

    # GitHub redelivers the label: the same server knows the delivery from its spool ...
    assert (await world.handled(labeled))["status"] == "duplicate"
    # ... and another replica (a spool of its own) is told by Temporal that the run already finished.
    async def temporal() -> Client:
        return world.client

    replica = create_app(WebhookSettings.from_env().model_copy(update={"spool_path": world.folder / "replica.sqlite3"}),
                         temporal)
    try:
        async with served(replica, timeout=30) as other:
            again = await world.handled(labeled, replica, other)
    finally:
        await replica.state.drain.stop()
        replica.state.spool.close()
    assert again["status"] == "refused" and "already finished" in again["reason"]
    runs = [run async for run in world.client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 1


async def test_a_pull_request_merged_elsewhere_ends_the_waiting_run_as_merged(
    world: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, github = world.fake, world.github
    # No model for the coder role in the registry: the coder comes from SPEC2SHIP_DEFAULT_CODER.
    (world.folder / "empty.yaml").write_text("models: []\n")
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(world.folder / "empty.yaml"))
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_CODER", f"scripted:{world.folder / 'coder.yaml'}")
    repo = world.repo()
    issue = fake.add_issue(repo, "Health docs, merged by hand", spec_body(world.service, world.team), labels=[LABEL])
    first = await world.handled(await github.labeled(repo, issue))
    handle = world.handle(repo, issue)
    waiting = await status_when(handle, lambda s: s.has_decision, "the run's decision")
    assert waiting.state is RunState.awaiting_human, waiting.reasons
    # Labelled again (a new delivery) while the run is open: the delivery joins the open run.
    second = await world.handled(await github.labeled(repo, issue))
    assert second["status"] == "acted" and second["run_id"] == first["run_id"]
    evidence = await handle.query(EVIDENCE, result_type=str)
    assert "from SPEC2SHIP_DEFAULT_CODER" in evidence

    [pull] = fake.pulls(repo)
    await github.api("PUT", f"/repos/{repo}/pulls/{pull.number}/merge", as_user=MAINTAINER, body={})
    closed = await world.handled(await github.pull_request_closed(repo, pull.number, by=MAINTAINER))
    assert (closed["status"], closed["reason"]) == ("acted", "signalled pr_closed")

    done = await asyncio.wait_for(handle.result(), 60)
    assert (done.state, done.reasons) == (RunState.merged, [f"merged outside spec2ship by {MAINTAINER}"])
    [merged] = fake.pulls(repo)
    assert merged.pull is not None and merged.pull.merged_by is not None
    assert merged.pull.merged_by.login == MAINTAINER  # the run did not merge it again


async def test_the_factory_starts_an_invalid_spec_whose_run_answers_on_the_issue(world: E2E) -> None:
    fake, github = world.fake, world.github
    repo = world.repo()
    body = spec_body("Bad_Name", world.team, extra="autonomy: L9\n")
    issue = fake.add_issue(repo, "A spec with mistakes", body, labels=[LABEL])

    report: FactoryReport = await world.client.execute_workflow(
        FACTORY_RUN, FactoryRunInput(repos=[repo], label=LABEL), id=f"factory-{uuid.uuid4()}",
        task_queue=world.queue, result_type=FactoryReport)
    assert report.started == [StartedRun(repo=repo, issue=issue, workflow_id=f"spec2ship/{repo}/issues/{issue}")]

    done = await asyncio.wait_for(world.handle(repo, issue).result(), 60)
    assert done.state is RunState.failed
    [answer] = github.bot_comments(repo, issue)
    assert answer.startswith("spec2ship could not start: the spec is invalid.")
    lines = [line for line in answer.splitlines() if line.startswith("- ")]
    assert any(f"{repo}#{issue}:3: service:" in line for line in lines), answer
    assert any(f"{repo}#{issue}:13: autonomy:" in line for line in lines), answer
    assert len(lines) == len(done.reasons) == 2
    assert fake.pulls(repo) == []
    # Once Temporal forgets the run, this label is what tells the sweep that the issue had one.
    assert fake.labels(repo, issue) == [LABEL, STATUS_LABELS["failed"]]


async def test_a_run_with_no_coder_configured_says_so_on_the_issue(world: E2E, monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    empty = tmp_path / "spec2ship.yaml"
    empty.write_text("models: []\n")
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(empty))
    fake, github = world.fake, world.github
    repo = world.repo()
    issue = fake.add_issue(repo, "Nobody to write it", spec_body(world.service, world.team), labels=[LABEL])
    report: FactoryReport = await world.client.execute_workflow(
        FACTORY_RUN, FactoryRunInput(repos=[repo], label=LABEL), id=f"factory-{uuid.uuid4()}",
        task_queue=world.queue, result_type=FactoryReport)
    assert [started.issue for started in report.started] == [issue]
    done = await asyncio.wait_for(world.handle(repo, issue).result(), 60)
    assert done.state is RunState.failed
    [answer] = github.bot_comments(repo, issue)
    assert answer.startswith("spec2ship could not start: no coder configured")
    assert fake.pulls(repo) == []
    assert fake.labels(repo, issue) == [LABEL, STATUS_LABELS["failed"]]
