"""Cancellation the way it really arrives: a workflow cancels the activity, Temporal delivers it via heartbeat."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from preview_fixtures import PY, AppRepo, Processes
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker
from temporalio.workflow import ActivityCancellationType

from activities.preview.local import LocalPreviewBackend
from contracts.evidence import PreviewEvidence
from contracts.preview import PreviewRequest
from specs.models import AcceptanceCriterion, PreviewConfig


class PreviewActivities:
    def __init__(self, backend: LocalPreviewBackend) -> None:
        self.backend = backend

    @activity.defn(name="run_preview_under_test")
    async def run_preview(self, request: PreviewRequest) -> PreviewEvidence:
        return await self.backend.run(request, activity.heartbeat)


@workflow.defn(sandboxed=False)
class PreviewUntilStopped:
    @workflow.init
    def __init__(self, request: PreviewRequest) -> None:
        self.stop = False

    @workflow.signal
    def stop_preview(self) -> None:
        self.stop = True

    @workflow.run
    async def run(self, request: PreviewRequest) -> str:
        handle = workflow.start_activity(
            "run_preview_under_test",
            request,
            result_type=PreviewEvidence,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: self.stop or handle.done())
        if handle.done():
            return "finished"
        handle.cancel()
        try:
            await handle
        except ActivityError as error:
            return type(error.cause).__name__
        return "finished"


async def test_workflow_cancellation_tears_the_preview_down(
    dev_client: Client, task_queue: str, tmp_path: Path, app_repo: AppRepo, procs: Processes, mode: str
) -> None:
    state = tmp_path / "state"
    # In the worktree: the one place a sandboxed command may write. In a sandbox, $$ is a pid of its own
    # namespace, so only the unconfined run checks the command's group by number.
    pgid_file = state / "previews" / "wf1" / "criterion.pgid"
    request = PreviewRequest(
        preview_id="wf1",
        repo_path=str(app_repo.path),
        head_sha=app_repo.good,
        config=PreviewConfig(start=f"exec {PY} app.py {{port}}", ready="/health", ready_timeout=10),
        criteria=[AcceptanceCriterion(id="hang", run="echo $$ > criterion.pgid; exec sleep 60", timeout=90)],
    )
    backend = LocalPreviewBackend(state, grace_s=0.5, heartbeat_every_s=0.2, confinement=mode)
    activities = PreviewActivities(backend)
    async with Worker(
        dev_client, task_queue=task_queue, workflows=[PreviewUntilStopped], activities=[activities.run_preview]
    ):
        handle = await dev_client.start_workflow(
            PreviewUntilStopped.run, request, id=f"preview-{task_queue}", task_queue=task_queue
        )
        async with asyncio.timeout(30):  # a guard against hanging the suite, not a timing assertion
            while not (pgid_file.exists() and pgid_file.read_text().strip()):
                await asyncio.sleep(0.05)
        criterion_pgid = int(pgid_file.read_text())
        server_pgid = json.loads((state / "previews" / "wf1.json").read_text())["pgid"]
        await handle.signal(PreviewUntilStopped.stop_preview)
        assert await handle.result() == "CancelledError"

    procs.assert_group_gone(server_pgid)
    if mode == "none":
        procs.assert_group_gone(criterion_pgid)
    procs.assert_preview_gone("wf1")
    assert not (state / "previews" / "wf1").exists() and not (state / "previews" / "wf1.json").exists()
    assert app_repo.worktrees() == [str(app_repo.path)]
