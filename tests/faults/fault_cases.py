"""The fault cases of this folder run at once, each in a world of its own (Temporal dev server, worker
process, repository, doubles), and each test awaits its own case's outcome.

Most of a faulted run's time is Temporal waiting, as it must: a sticky queue's timeout after a worker
died, an activity's heartbeat or start-to-close timeout, a retry's backoff or a Retry-After. Run one after
another, the matrix would take a quarter of an hour; at once, it takes about as long as its slowest case.
Only the cases of the selected tests start (`-k`, a node id); all at once unless
`SPEC2SHIP_FAULT_CONCURRENCY` caps them (then in the order they were collected). On two cores the whole
matrix takes about four minutes either way: it is bound by its slowest cases' timeouts, not by the CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

Case = Callable[[Path], Awaitable[Any]]


class FaultCases:
    """The running cases, by name; `outcome(name)` is what its coroutine returned (or raised)."""

    def __init__(self, cases: dict[str, Case], folders: pytest.TempPathFactory, concurrency: int) -> None:
        self._gate = asyncio.Semaphore(concurrency)
        self.seconds: dict[str, float] = {}  # how long each finished case ran, for the summary
        self._tasks = {name: asyncio.create_task(self._run(name, case, folders), name=f"fault-case {name}")
                       for name, case in cases.items()}

    async def _run(self, name: str, case: Case, folders: pytest.TempPathFactory) -> Any:
        async with self._gate:
            started = time.monotonic()
            try:
                return await case(folders.mktemp(name))
            finally:
                self.seconds[name] = time.monotonic() - started

    async def outcome(self, name: str) -> Any:
        return await self._tasks[name]

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
