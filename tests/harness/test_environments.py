"""The two Temporal environments the suite relies on start and run a workflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker


@workflow.defn(sandboxed=False)
class SleepThenGreet:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(timedelta(days=3))
        return f"hello {name} after {workflow.info().run_id[:0]}3 days"


async def test_dev_server_runs_a_workflow(dev_client: Client, task_queue: str) -> None:
    async with Worker(dev_client, task_queue=task_queue, workflows=[SleepThenGreet]):
        handle = await dev_client.start_workflow(
            SleepThenGreet.run, "ada", id=f"harness-{task_queue}", task_queue=task_queue
        )
        description = await handle.describe()
        assert description.status is not None
        await handle.terminate("the dev server is real: we do not wait three days")


async def test_time_skipping_server_skips_three_days(skip_env: WorkflowEnvironment, task_queue: str) -> None:
    async with Worker(skip_env.client, task_queue=task_queue, workflows=[SleepThenGreet]):
        before = await skip_env.get_current_time()
        result = await skip_env.client.execute_workflow(
            SleepThenGreet.run, "ada", id=f"harness-{task_queue}", task_queue=task_queue
        )
        after = await skip_env.get_current_time()
    assert result == "hello ada after 3 days"
    assert after - before >= timedelta(days=3)
