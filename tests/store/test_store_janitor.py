"""Retention: the janitor removes the blobs of agent runs that finished longer ago than the retention period,
and nothing of a run that is still going."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from doubles.waiting_workflow import FINISH, WaitUntilTold
from store.conftest import Backend
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.store.activities import StoreActivities
from activities.store.folder import FolderStore, scope_folder_name
from activities.store.janitor import sweep
from contracts.activities import implementations
from contracts.names import STORE_JANITOR, STORE_JANITOR_SCHEDULE
from contracts.store import SweepReport, SweepStoreInput
from rules.retention import RunState
from workers.cli_schedule import store_janitor_schedule
from workers.cli_setup import ensure_schedule
from workflows.store_janitor import StoreJanitor

DAY = 86400.0


async def test_a_sweep_removes_finished_and_forgotten_runs_and_keeps_the_rest(backend: Backend) -> None:
    now = datetime.now(UTC) + timedelta(days=2)  # every blob written here is two days old by then
    states: dict[str, tuple[RunState, datetime | None]] = {
        "run/going": (RunState.running, None),
        "run/closed-long-ago": (RunState.closed, now - timedelta(days=2)),
        "run/closed-lately": (RunState.closed, now - timedelta(hours=1)),
        "run/forgotten": (RunState.unknown, None),
    }
    for scope in [*states, "run/unanswered"]:
        backend.store.put(scope, scope.encode())

    async def state_of(scope: str) -> tuple[RunState, datetime | None]:
        if scope == "run/unanswered":
            raise RPCError("the frontend is restarting", RPCStatusCode.UNAVAILABLE, b"")
        return states[scope]

    report = await sweep(backend.store, state_of, retention_s=DAY, now=now)
    assert sorted(report.removed) == ["run/closed-long-ago", "run/forgotten"]
    assert (report.checked, report.kept_running, report.kept_recent, report.removed_blobs) == (5, 1, 1, 2)
    assert report.problems == ["run/unanswered: Temporal did not say whether it is finished: the frontend is "
                               "restarting"]
    assert sorted(found.scope for found in backend.store.scopes()) == [
        "run/closed-lately", "run/going", "run/unanswered"]

    longer = await sweep(backend.store, state_of, retention_s=3 * DAY, now=now)
    assert longer.removed == [] and longer.kept_recent == 1


async def test_the_janitor_workflow_asks_temporal_and_its_schedule_runs_it(dev_client: Client, task_queue: str,
                                                                           tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    going = await dev_client.start_workflow(WaitUntilTold.run, id=f"going-{uuid.uuid4().hex[:6]}",
                                            task_queue=task_queue)
    ended = await dev_client.start_workflow(WaitUntilTold.run, id=f"ended-{uuid.uuid4().hex[:6]}",
                                            task_queue=task_queue)
    forgotten, fresh = f"forgotten-{uuid.uuid4().hex[:6]}", f"fresh-{uuid.uuid4().hex[:6]}"
    for scope in (going.id, ended.id, forgotten, fresh):
        store.put(scope, f"conversation of {scope}".encode())
    two_days_ago = time.time() - 2 * DAY
    for path in (store.root / scope_folder_name(forgotten)).iterdir():
        os.utime(path, (two_days_ago, two_days_ago))

    async def janitor(retention_s: float) -> SweepReport:
        return await dev_client.execute_workflow(StoreJanitor.run, SweepStoreInput(retention_s=retention_s),
                                                 id=f"janitor-{uuid.uuid4().hex[:6]}", task_queue=task_queue)

    activities = StoreActivities(store, dev_client, retention_s=DAY)
    async with Worker(dev_client, task_queue=task_queue, workflows=[StoreJanitor, WaitUntilTold],
                      activities=implementations(activities)):
        await ended.signal(FINISH)
        await ended.result()

        first = await janitor(DAY)  # Temporal knows neither `forgotten` nor `fresh`: their blobs' age decides
        assert first.removed == [forgotten]
        assert (first.kept_running, first.kept_recent) == (1, 2)

        second = await janitor(0)  # `ended` closed, `fresh` unknown: both past a retention of nothing
        assert sorted(second.removed) == sorted([ended.id, fresh])
        assert [found.scope for found in store.scopes()] == [going.id]

        store.put(ended.id, b"written again after the run ended")
        await ensure_schedule(dev_client, STORE_JANITOR_SCHEDULE,
                              store_janitor_schedule(timedelta(hours=1), task_queue))
        schedule = dev_client.get_schedule_handle(STORE_JANITOR_SCHEDULE)
        await schedule.trigger()  # the schedule's own pass, with the worker's retention of a day
        report = await _first_scheduled_run(dev_client)
        assert report.checked == 2 and report.removed == [] and report.kept_running == 1
        await schedule.delete()
        await going.signal(FINISH)


async def _first_scheduled_run(client: Client) -> SweepReport:
    schedule = client.get_schedule_handle(STORE_JANITOR_SCHEDULE)
    for _ in range(300):  # the schedule starts its workflow asynchronously
        described = await schedule.describe()
        if described.info.recent_actions:
            action = described.info.recent_actions[0].action
            workflow_id = getattr(action, "workflow_id", None)
            assert workflow_id is not None
            handle = client.get_workflow_handle(workflow_id, result_type=SweepReport)
            assert (await handle.describe()).workflow_type == STORE_JANITOR
            return await handle.result()
        await asyncio.sleep(0.1)
    pytest.fail("the store janitor's schedule started no workflow after a trigger")
