"""FactoryRun on the Temporal dev server (visibility counts the runs in flight).

`list_ready_issues` is replaced by a test activity of the same name; `start_spec_runs` is the real
one, starting real SpecToShip executions on a queue no worker polls, so they stay in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.factory.activities import FactoryActivities, in_flight_query
from activities.forge.base import ForgeError
from contracts.factory import (
    FactoryReport,
    FactoryRunInput,
    ListReadyIssuesInput,
    ReadyIssue,
    ReadyIssues,
    RepoProblem,
    SkippedIssue,
    StartedRun,
    StartSpecRunsInput,
)
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import FACTORY_RUN, SPEC_TO_SHIP
from contracts.runs import SpecToShipInput
from workflows.factory_run import FactoryRun


def ready_on_github(issues: list[ReadyIssue]) -> Callable[[ListReadyIssuesInput], ReadyIssues]:
    """A `list_ready_issues` that answers from a list instead of GitHub (same name, same types)."""

    @activity.defn(name="list_ready_issues")
    def list_ready_issues(request: ListReadyIssuesInput) -> ReadyIssues:
        assert request.label == "ship-it"
        return ReadyIssues(issues=[issue for issue in issues if issue.repo in request.repos])

    return list_ready_issues


async def in_flight(client: Client, repo: str, expected: int) -> None:
    """Wait until visibility shows `expected` open runs in `repo` (it trails the starts a little)."""
    for _ in range(500):
        if (await client.count_workflows(in_flight_query(repo))).count == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"visibility never showed {expected} open runs in {repo}")


def run_id(repo: str, issue: int) -> str:
    return f"spec2ship/{repo}/issues/{issue}"


async def test_factory_starts_up_to_max_in_flight_and_never_twice(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = dev_env.client
    shop, blog = f"octo/shop-{uuid.uuid4().hex[:8]}", f"octo/blog-{uuid.uuid4().hex[:8]}"
    runs_queue = f"{task_queue}-runs"  # nobody polls it: started runs stay in flight
    issues = [ReadyIssue(repo=shop, number=n, installation_id=42) for n in (1, 2, 3)] + [
        ReadyIssue(repo=blog, number=5)
    ]
    request = FactoryRunInput(repos=[shop, blog], label="ship-it", max_in_flight=2, task_queue=runs_queue)
    # Issue 1 already has a run, started by the webhook.
    await client.start_workflow(
        SPEC_TO_SHIP,
        SpecToShipInput(repo=RepoRef(kind=ForgeKind.github, location=shop), spec=SpecSource(kind="issue")),
        id=run_id(shop, 1),
        task_queue=runs_queue,
    )
    await in_flight(client, shop, 1)

    factory = FactoryActivities(client)
    with ThreadPoolExecutor(max_workers=2) as pool:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[FactoryRun],
            activities=[ready_on_github(issues), factory.start_spec_runs],
            activity_executor=pool,
        ):

            async def factory_run() -> FactoryReport:
                result: FactoryReport = await client.execute_workflow(
                    FACTORY_RUN, request, id=f"factory-{uuid.uuid4()}", task_queue=task_queue, result_type=FactoryReport
                )
                return result

            first = await factory_run()
            assert first.started == [
                StartedRun(repo=shop, issue=2, workflow_id=run_id(shop, 2)),
                StartedRun(repo=blog, issue=5, workflow_id=run_id(blog, 5)),
            ]
            assert first.skipped == [
                SkippedIssue(repo=shop, issue=1, reason=f"its run is open: {run_id(shop, 1)}"),
                SkippedIssue(repo=shop, issue=3, reason=f"2 run(s) already in flight in {shop}; next schedule"),
            ]
            started = await client.get_workflow_handle(run_id(shop, 2)).describe()
            assert started.task_queue == runs_queue

            # The next pass changes nothing: the open runs are skipped and still no slot is free.
            await in_flight(client, shop, 2)
            second = await factory_run()
            assert second.started == []
            assert [(s.repo, s.issue) for s in second.skipped] == [(shop, 1), (shop, 2), (shop, 3), (blog, 5)]

            # A run ends: its issue is not started again, and its slot goes to the next issue.
            await client.get_workflow_handle(run_id(shop, 1)).terminate("test: the run ended")
            await in_flight(client, shop, 1)
            third = await factory_run()
            assert third.started == [StartedRun(repo=shop, issue=3, workflow_id=run_id(shop, 3))]
            assert SkippedIssue(repo=shop, issue=1, reason=f"its run terminated: {run_id(shop, 1)}") in third.skipped

    # The runs were started with what the issue says; the factory is who asked.
    described = await client.get_workflow_handle(run_id(shop, 3)).describe()
    assert described.workflow_type == SPEC_TO_SHIP
    for workflow_id in (run_id(shop, 2), run_id(shop, 3), run_id(blog, 5)):
        await client.get_workflow_handle(workflow_id).terminate("test over")


async def test_the_started_run_gets_the_issue_as_its_spec(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    repo = f"octo/one-{uuid.uuid4().hex[:8]}"
    factory = FactoryActivities(dev_env.client, task_queue)
    report = await ActivityEnvironment().run(
        factory.start_spec_runs,
        StartSpecRunsInput(
            issues=[ReadyIssue(repo=repo, number=9, installation_id=7)], max_in_flight=1, requested_by="factory:test"
        ),
    )
    assert report.started == [StartedRun(repo=repo, issue=9, workflow_id=run_id(repo, 9))]
    handle = dev_env.client.get_workflow_handle(run_id(repo, 9))
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.task_queue.name == task_queue
    [payload] = started.input.payloads
    [run_input] = await dev_env.client.data_converter.decode([payload], [SpecToShipInput])
    assert run_input == SpecToShipInput(
        repo=RepoRef(kind=ForgeKind.github, location=repo, installation_id=7),
        spec=SpecSource(kind="issue", issue_number=9),
        requested_by="factory:test",
        issue_number=9,
    )
    await handle.terminate("test over")


class ScriptedIssues:
    def __init__(self, answers: dict[str, list[ReadyIssue] | ForgeError]) -> None:
        self.answers = answers

    def ready_issues(self, repo: str, label: str) -> list[ReadyIssue]:
        answer = self.answers[repo]
        if isinstance(answer, ForgeError):
            raise answer
        return answer


def test_a_repository_that_cannot_be_read_is_reported_and_the_others_go_on(dev_env: WorkflowEnvironment) -> None:
    ready = [ReadyIssue(repo="octo/shop", number=1)]
    issues = ScriptedIssues({"octo/shop": ready, "octo/gone": ForgeError("GitHub found nothing (404)")})
    factory = FactoryActivities(dev_env.client, issues=issues)
    result = ActivityEnvironment().run(
        factory.list_ready_issues, ListReadyIssuesInput(repos=["octo/gone", "octo/shop"], label="spec2ship")
    )
    assert result == ReadyIssues(
        issues=ready, problems=[RepoProblem(repo="octo/gone", reason="GitHub found nothing (404)")]
    )


def test_a_rate_limit_fails_the_activity_so_temporal_retries_it(dev_env: WorkflowEnvironment) -> None:
    limited = ForgeError("GitHub rate limit (429): retry after 30 s", retryable=True, retry_after_s=30)
    factory = FactoryActivities(dev_env.client, issues=ScriptedIssues({"octo/shop": limited}))
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(
            factory.list_ready_issues, ListReadyIssuesInput(repos=["octo/shop"], label="spec2ship")
        )
    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay is not None
    assert raised.value.next_retry_delay.total_seconds() == 30
