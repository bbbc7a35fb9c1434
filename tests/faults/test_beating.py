"""Synchronous activities beat while they run, so a worker that dies in one is noticed within
`LOST_WORKER` (the kill-mid-merge fault case shows it end to end)."""

from __future__ import annotations

import threading
import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities import heartbeats
from activities.forge.activities import ForgeActivities
from activities.heartbeats import beating
from activities.workspace.activities import WorkspaceActivities
from workflows.options import FORGE_CALL, LOST_WORKER, PREPARE_WORKSPACE, REMOVE_WORKSPACE, WORKSPACE_GIT


def test_a_slow_synchronous_activity_beats_until_it_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeats, "BEAT_EVERY_S", 0.02)
    beats: list[str] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(threading.current_thread().name)

    @beating
    def slow() -> str:
        deadline = time.monotonic() + 5
        while len(beats) < 3:  # returns once beaten three times; 5 s bound only against a hang
            assert time.monotonic() < deadline, "no heartbeat while the activity ran"
            time.sleep(0.01)
        return "done"

    assert env.run(slow) == "done"
    count = len(beats)
    time.sleep(0.1)
    assert len(beats) <= count + 1  # the beating stops with the activity (one may have been on its way)
    assert set(beats) == {"beat-slow"}


def test_outside_an_activity_the_function_runs_as_it_is() -> None:
    assert beating(lambda: 42)() == 42


def test_every_git_and_forge_activity_beats_under_a_heartbeat_timeout() -> None:
    for options in (FORGE_CALL, WORKSPACE_GIT, PREPARE_WORKSPACE, REMOVE_WORKSPACE):
        assert options["heartbeat_timeout"] == LOST_WORKER
    for holder, names in ((ForgeActivities, ["load_spec", "open_pull_request", "publish_evidence",
                                             "merge_pull_request", "notify", "close_change"]),
                          (WorkspaceActivities, ["diff_workspace", "check_change", "publish_branch",
                                                 "remove_workspace"])):
        for name in names:
            assert getattr(getattr(holder, name), "__wrapped__", None) is not None, f"{name} does not beat"
