"""A workflow that waits until it is told to finish: a run that is still going, or one that has ended,
for tests that ask Temporal about a workflow's state (the blob store's janitor)."""

from __future__ import annotations

from temporalio import workflow

FINISH = "finish"


@workflow.defn(name="WaitUntilTold")
class WaitUntilTold:
    def __init__(self) -> None:
        self._told = False

    @workflow.signal(name=FINISH)
    def finish(self) -> None:
        self._told = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._told)
