"""The Temporal dev server restarted mid-run with its database kept, while the worker keeps running.

One run of the sample greeter spec: the server is stopped (SIGTERM) while the coder agent works and started
again on the same database file and port; later it is killed (SIGKILL, no shutdown at all) while the preview
runs its checks, and started again. The worker reconnects by itself; the run must end merged with one PR,
one merge commit, and nothing left running.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from fault_cases import FaultCases
from fault_runs import Ending, local_run, stage_reached

from contracts.runs import RunState, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DOWN_S = 3.0  # long enough for every poller and in-flight call of the worker to notice


async def restarts(folder: Path) -> Ending:
    async with local_run(folder, "temporal-restart") as run:
        run.worker.start()
        handle = await run.submit(run.spec(**{"run: python -m unittest -q": "run: sleep 6 && python -m unittest -q"}))
        notes = []
        for stage, how in (("write", signal.SIGTERM), ("preview", signal.SIGKILL)):
            await stage_reached(handle, stage)
            run.dev.stop(how)
            await asyncio.sleep(DOWN_S)
            run.client = await run.dev.start()
            run.handle = run.client.get_workflow_handle(handle.id, result_type=RunStatus)
            handle = run.handle
            notes.append(f"server stopped with {how.name} during {stage}, started again on its database")
        return await run.ending(notes=notes)


CASES = {"temporal-restart": restarts}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_run_survives_restarts_of_the_temporal_server(case: str, fault_cases: FaultCases) -> None:
    ending: Ending = await fault_cases.outcome(case)
    print(f"\n{case}: " + "; ".join(ending.notes) + f"; activities retried: {ending.history.retried() or 'none'}")
    ending.assert_clean([RunState.merged])
    assert ending.history.stages_run_again() == {}
