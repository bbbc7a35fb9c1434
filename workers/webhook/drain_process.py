"""The drain in a process of its own, and the supervisor that keeps one running beside the server.

Why a process: carrying a delivery out costs CPU in Python (the issue's spec is parsed, the run's input
encoded, the Temporal client called), several times what answering it costs. On the server's event loop
that work delays answers; in a process of its own it runs on another core, and the server's loop only
receives, checks and spools. The two share the spool file (SQLite lets two processes use it), each
holding its role's lock; the drain notices new deliveries by SQLite's data version (`Drain`).

`spec2ship webhook serve` starts `python -m workers.webhook.drain_process --watch-parent` and starts it
again if it exits (with a growing pause), and stops it on shutdown. `spec2ship webhook drain` runs the
same loop on its own, for a deployment that runs it as a separate container beside `serve --drain none`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

from pydantic import ValidationError

from activities.forge.registry import close_forges
from workers.temporal_client import connect
from workers.webhook import jsonlog
from workers.webhook.drain import Backoff, Drain
from workers.webhook.execute import Executor
from workers.webhook.forge import ForgeFactory, github_forge
from workers.webhook.runs import TemporalConnection, TemporalFactory
from workers.webhook.settings import DrainSettings, settings_problem
from workers.webhook.spool import Spool, SpoolError

log = logging.getLogger("spec2ship.webhook")

EXIT_SPOOL = 2
DRAIN_NICENESS = 10
PARENT_CHECK_S = 1.0


async def run_drain(settings: DrainSettings, stop: asyncio.Event, temporal: TemporalFactory = connect,
                    forges: ForgeFactory = github_forge) -> None:
    """Drain `settings.spool_path` until `stop` is set; then carry out what is due for the grace period.
    Raises `SpoolError` (`SpoolBusy`) when the spool cannot be opened for draining."""
    spool = Spool.open(settings.spool_path, roles=("drain",))
    connection = TemporalConnection(temporal, timedelta(seconds=settings.temporal_timeout_s))
    execute = Executor(connection.runs, forges, settings.task_queue, settings.github_timeout_s)
    drain = Drain(spool, execute, concurrency=settings.drain_concurrency, keep_s=settings.keep_s)
    drain.start()
    log.info("drain started", extra={"spool_path": str(spool.path)})
    try:
        await stop.wait()
    finally:
        await drain.stop(settings.drain_grace_s)
        spool.close()
        if forges is github_forge:
            close_forges()


async def _watch_parent(stop: asyncio.Event) -> None:
    """Stop when the server that started this process is gone (killed without a chance to stop it)."""
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("drain: the webhook server that started it is gone; stopping")
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_S)


async def _main(watch_parent: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = asyncio.create_task(_watch_parent(stop)) if watch_parent else None
    try:
        await run_drain(DrainSettings.drain_from_env(), stop)
    except SpoolError as error:
        log.error("drain not started: %s", error)
        return EXIT_SPOOL
    except ValidationError as error:
        log.error("drain not started: bad setting: %s", settings_problem(error))
        return EXIT_SPOOL
    finally:
        if watcher is not None:
            watcher.cancel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.webhook.drain_process", description=__doc__)
    parser.add_argument("--watch-parent", action="store_true", help="stop when the parent process is gone")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by this much")
    arguments = parser.parse_args(argv)
    if arguments.nice:
        os.nice(arguments.nice)
    jsonlog.configure()
    return asyncio.run(_main(arguments.watch_parent))


class DrainSupervisor:
    """Keeps one drain process running beside the server: started with it, started again when it exits,
    stopped (SIGTERM, then its grace, then SIGKILL) when the server stops."""

    def __init__(self, grace_s: float, command: Sequence[str] | None = None, backoff: Backoff | None = None) -> None:
        # Niced: when CPU is short, answering GitHub goes first; the drain catches up from the spool after.
        self._command = list(command or [sys.executable, "-m", "workers.webhook.drain_process", "--watch-parent",
                                         "--nice", str(DRAIN_NICENESS)])
        self._grace_s = grace_s
        self._backoff = backoff or Backoff(first_s=1.0, most_s=30.0)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="drain-supervisor")

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            self._process = await asyncio.create_subprocess_exec(*self._command, stdin=subprocess.DEVNULL)
            code = await self._process.wait()
            if self._stopping:
                return
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            wait = self._backoff.after(failures)
            self.restarts += 1
            log.error("drain process exited (code %s); starting it again in %.0f s", code, wait)
            await asyncio.sleep(wait)

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=self._grace_s + 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


if __name__ == "__main__":
    sys.exit(main())
