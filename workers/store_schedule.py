"""The Schedule that runs the blob store's janitor (StoreJanitor) every so often; `setup` and `up` keep it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from contracts.names import STORE_JANITOR, STORE_JANITOR_SCHEDULE
from contracts.store import SweepStoreInput

DEFAULT_EVERY = timedelta(hours=1)


def store_janitor_schedule(queue: str, every: timedelta = DEFAULT_EVERY) -> Schedule:
    """A StoreJanitor pass every `every`, overlaps skipped; the retention period is the workers' setting."""
    return Schedule(
        action=ScheduleActionStartWorkflow(STORE_JANITOR, SweepStoreInput(), id=f"{STORE_JANITOR_SCHEDULE}-run",
                                           task_queue=queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="removes blob-store content of agent runs finished longer ago than "
                                 "SPEC2SHIP_STORE_RETENTION"),
    )


async def ensure_store_janitor(client: Client, queue: str, every: timedelta = DEFAULT_EVERY) -> str:
    """Create the schedule, or bring an existing one to these settings; say which."""
    schedule = store_janitor_schedule(queue, every)
    try:
        await client.create_schedule(STORE_JANITOR_SCHEDULE, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(STORE_JANITOR_SCHEDULE).update(replace)
        return "updated"
