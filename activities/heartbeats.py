"""Heartbeats for activities that wait on blocking work (git, PyGithub): a worker that dies is noticed in seconds.

Without a heartbeat, Temporal learns that an activity's worker is gone (SIGKILL, OOM, a lost node) only
when the activity's start-to-close timeout runs out: five minutes for git in a workspace, two for a forge
call, while the run waits. With one, the retry starts once `heartbeat_timeout` passes without a beat.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
BEAT_EVERY_S = 5.0  # well inside the heartbeat timeouts of workflows/options.py (30 s)


def beating(fn: Callable[P, R]) -> Callable[P, R]:
    """Heartbeat from a helper thread while the synchronous activity `fn` runs (put it under `activity.defn`).

    The beat says only that the worker lives; cancellation is not read from it (these activities finish
    in seconds, and each is safe to repeat). Outside an activity (a unit test), `fn` runs as it is.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not activity.in_activity():
            return fn(*args, **kwargs)
        context = contextvars.copy_context()  # the activity's own context, entered only by the beating thread
        done = threading.Event()

        def beat() -> None:
            while not done.wait(BEAT_EVERY_S):
                try:
                    context.run(activity.heartbeat)
                except Exception as error:  # a beat that could not be sent; the next one tries again
                    log.debug("heartbeat of %s not sent: %s", fn.__name__, error)

        threading.Thread(target=beat, name=f"beat-{fn.__name__}", daemon=True).start()
        try:
            return fn(*args, **kwargs)
        finally:
            done.set()

    return run


async def heartbeating(work: Awaitable[R], note: str, every_s: float = BEAT_EVERY_S) -> R:
    """The same for an async activity: await `work` (a thread, say), beating `note` meanwhile; cancellation
    arrives with a beat."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if done:
            return task.result()
        activity.heartbeat(note)
