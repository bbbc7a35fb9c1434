"""SIGKILL of the worker process at every stage boundary, and in the middle of each long activity.

Each case is one run of the sample greeter spec (L5: it merges when nothing lasting goes wrong) on the
local forge, driven by a real `spec2ship worker --data-dir DIR` process. The worker is killed with SIGKILL
(its whole process group: no shutdown, nothing said to Temporal) and started again on the same folder, so
it has the same identity and workspace queue, as a pod restarted with its volume would. Every run must
end merged with exactly one PR, exactly one merge commit on main, no preview process, agent command or
preview record left, and no stage that had completed before a kill run again.

- boundaries-early / -late: one run each, killed right after each stage's activity or agent completed
  (the history is followed as the server writes it, so the kill lands before the worker acts on it).
- mid-prepare_workspace: after `git worktree add`, before the activity answered (a git shim holds it).
- mid-run_tool (bubblewrap, and unconfined): while the coder's command runs; the restarted worker must
  not find the dead worker's command still running.
- mid-validate_in_preview (bubblewrap, and unconfined): while the preview runs its checks; what outlives
  the worker the janitor reaps, and the retry runs the preview again.
- mid-merge: after the merge moved main, before the PR record said so; the retry finds it by its trailer.

The outcomes, and what brings each run back, are in docs/faults.md.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
import yaml
from fault_cases import FaultCases
from fault_harness import PREVIEW_MARKER, TOOL_MARKER, HistoryWatch, marked_processes, processes_under, token_of, until
from fault_runs import Ending, local_run

from contracts.agents import AgentChoice
from contracts.runs import RunState
from workers.sample.repo import CODER_GREET

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EARLY = ["load_spec", "plan_agents", "request_admission", "prepare_workspace", "agent:coder", "diff_workspace",
         "publish_branch"]
LATE = ["open_pull_request", "check_change", "agent:reviewer", "validate_in_preview", "agent:validator",
        "decide_gate", "merge_pull_request", "remove_workspace"]


async def boundaries(folder: Path, kill_after: list[str]) -> Ending:
    """One run, killed once right after each of `kill_after` completed (in the order the run reaches them)."""
    async with local_run(folder, "boundaries") as run:
        run.worker.start()
        handle = await run.submit()
        watch = HistoryWatch(handle)
        notes = []
        for boundary in kill_after:
            done = await watch.next_completion(lambda c, b=boundary: c.kind == b)  # type: ignore[misc]
            run.worker.restart_after_kill()
            notes.append(f"killed after {boundary} (event {done.event_id})")
        return await run.ending(notes=notes)


def slow_command_coder(run_folder: Path, command: str, timeout: int) -> Path:
    """The greeter's coder, whose test run is `command` (so a test can catch it running)."""
    turns: list[dict[str, Any]] = [dict(turn) for turn in cast(list[dict[str, Any]], CODER_GREET["turns"])]
    turns[2]["tool_calls"] = [{"name": "run_command", "arguments": {"command": command, "timeout": timeout}}]
    path = run_folder / "coder-slow.yaml"
    path.write_text(yaml.safe_dump({**CODER_GREET, "turns": turns}, sort_keys=False))
    return path


async def mid_git(folder: Path, activity: str, words: str) -> Ending:
    """Killed while the worker sits right after the git command containing `words` (the shim holds it)."""
    async with local_run(folder, activity) as run:
        run.shim.arm(words)
        run.worker.start()
        await run.submit()
        await run.shim.wait_reached(f"`git {words}` in {activity}", run.worker)
        run.worker.restart_after_kill()
        return await run.ending(notes=[f"killed right after `git {words}`"])


async def mid_run_tool(folder: Path, sandbox: str) -> Ending:
    """Killed while the coder's command runs; what the dead worker's command left must not outlive a restart."""
    async with local_run(folder, f"run-tool-{sandbox}", env={"SPEC2SHIP_SANDBOX": sandbox}) as run:
        coder = slow_command_coder(run.folder, "sleep 15 && python -m unittest -q", 25)
        run.worker.start()
        await run.submit(agents=AgentChoice(coder=f"scripted:{coder}",
                                            reviewer=f"scripted:{run.paths['reviewer-approve.yaml']}",
                                            judge=f"scripted:{run.paths['judge-fallback.yaml']}"))

        def sleeping() -> list[psutil.Process]:
            return [p for p in processes_under(TOOL_MARKER, run.data) if "sleep" in " ".join(p.cmdline())]

        await until(sleeping, "the coder's command", 180, run.worker)
        run.worker.kill()
        orphans = processes_under(TOOL_MARKER, run.data)
        run.worker.start()
        await run.worker.ready()
        alive = [p.pid for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        notes = [f"killed during `sleep 15 && python -m unittest -q` ({sandbox}): {len(orphans)} of its processes "
                 f"outlived the worker, {len(alive)} still ran once the new worker was ready"]
        ending = await run.ending(notes=notes)
        ending.notes.append(f"orphans alive after restart: {alive}")
        return ending


async def mid_preview(folder: Path, sandbox: str) -> Ending:
    async with local_run(folder, f"preview-{sandbox}", env={"SPEC2SHIP_SANDBOX": sandbox}) as run:
        run.worker.start()
        handle = await run.submit(run.spec(**{"run: python -m unittest -q": "run: sleep 6 && python -m unittest -q"}))
        await until(lambda: marked_processes(PREVIEW_MARKER, token_of(handle.id)), "the preview", 180, run.worker)
        await asyncio.sleep(1.0)  # into the slow check
        run.worker.kill()
        survived = len(marked_processes(PREVIEW_MARKER, token_of(handle.id)))
        run.worker.start()
        return await run.ending(notes=[f"killed during the preview's checks ({sandbox}); {survived} preview "
                                       "process(es) outlived the worker"])


CASES = {
    "kill-boundaries-early": functools.partial(boundaries, kill_after=EARLY),
    "kill-boundaries-late": functools.partial(boundaries, kill_after=LATE),
    "kill-mid-prepare_workspace": functools.partial(mid_git, activity="prepare_workspace", words="worktree add"),
    "kill-mid-run_tool": functools.partial(mid_run_tool, sandbox="bubblewrap"),
    "kill-mid-run_tool-unconfined": functools.partial(mid_run_tool, sandbox="none"),
    "kill-mid-validate_in_preview": functools.partial(mid_preview, sandbox="bubblewrap"),
    "kill-mid-validate_in_preview-unconfined": functools.partial(mid_preview, sandbox="none"),
    "kill-mid-merge": functools.partial(mid_git, activity="merge",
                                        words="update-ref -m spec2ship: merge pull request"),
}


@pytest.mark.parametrize("case", ["kill-boundaries-early", "kill-boundaries-late"])
async def test_a_worker_killed_at_each_stage_boundary_resumes_without_redoing_a_stage(
        case: str, fault_cases: FaultCases) -> None:
    ending: Ending = await fault_cases.outcome(case)
    ending.assert_clean([RunState.merged])
    print(f"\n{case}: " + "; ".join(ending.notes) + f"; activities retried: {ending.history.retried() or 'none'}")
    assert ending.history.stages_run_again() == {}, "a stage ran again after a kill"


@pytest.mark.parametrize("case", ["kill-mid-prepare_workspace", "kill-mid-run_tool", "kill-mid-run_tool-unconfined",
                                  "kill-mid-validate_in_preview", "kill-mid-validate_in_preview-unconfined",
                                  "kill-mid-merge"])
async def test_a_worker_killed_in_a_long_activity_is_retried_once_and_leaves_nothing(
        case: str, fault_cases: FaultCases) -> None:
    ending: Ending = await fault_cases.outcome(case)
    print(f"\n{case}: " + "; ".join(ending.notes))
    ending.assert_clean([RunState.merged])
    killed, noticed_by = {
        "kill-mid-prepare_workspace": ("prepare_workspace", "Heartbeat"),
        # run_tool has no heartbeat (workflows/agent_run.py): its own start-to-close timeout finds the loss
        "kill-mid-run_tool": ("coder:run_tool", "StartToClose"),
        "kill-mid-run_tool-unconfined": ("coder:run_tool", "StartToClose"),
        "kill-mid-validate_in_preview": ("validate_in_preview", "Heartbeat"),
        "kill-mid-validate_in_preview-unconfined": ("validate_in_preview", "Heartbeat"),
        "kill-mid-merge": ("merge_pull_request", "Heartbeat"),
    }[case]
    assert ending.history.attempts[killed] == 2, ending.history.attempts  # the lost attempt, then its retry
    assert ending.history.failures[killed] == f"activity {noticed_by} timeout", ending.history.failures
    assert ending.history.stages_run_again() == {}
    if case.startswith("kill-mid-run_tool"):
        assert ending.notes[-1] == "orphans alive after restart: []", "the dead worker's command still ran"
