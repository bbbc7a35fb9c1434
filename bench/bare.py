"""The floor for the orchestration ratios: a bare workflow with a real run's shape and no work in it.

It schedules, in the same order, as many activities and children as a real SpecToShip run did, each
activity returning at once and each child running its count of activities one after another. What a
real run takes beyond this is what spec2ship's own workflow code, payloads and activities cost.
Imports only temporalio: the worker's sandbox re-imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

NOOP_TIMEOUT = timedelta(seconds=60)  # a no-op that takes this long means a stuck worker, not a slow one


@dataclass
class BareInput:
    """Each step is one activity (0) or one child running that many activities (n > 0)."""

    steps: list[int] = field(default_factory=list)


@activity.defn(name="bench_noop")
async def noop(value: int) -> int:
    return value


@workflow.defn(name="BenchBareChild")
class BareChild:
    @workflow.run
    async def run(self, activities: int) -> int:
        for n in range(activities):
            await workflow.execute_activity(noop, n, start_to_close_timeout=NOOP_TIMEOUT)
        return activities


@workflow.defn(name="BenchBare")
class Bare:
    @workflow.run
    async def run(self, shape: BareInput) -> int:
        done = 0
        for index, step in enumerate(shape.steps):
            if step == 0:
                done += await workflow.execute_activity(noop, 1, start_to_close_timeout=NOOP_TIMEOUT)
            else:
                done += await workflow.execute_child_workflow(
                    BareChild.run, step, id=f"{workflow.info().workflow_id}/child-{index}")
        return done


WORKFLOWS: list[type] = [Bare, BareChild]
ACTIVITIES = [noop]
