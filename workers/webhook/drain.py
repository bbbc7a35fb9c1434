"""The drain: carries out spooled deliveries against Temporal and GitHub, in the background of the webhook.

- **Order.** Deliveries are taken oldest first; two for the same run are never carried out at once, and
  the later one waits for the earlier (labelled, then commented on: the start goes first).
- **Retries.** A delivery stays in the spool until it has an outcome. While Temporal cannot be reached
  the whole drain pauses with a growing back-off (0.5 s doubling to 30 s) and each delivery it tried
  waits as long; a GitHub rate limit or outage delays only that delivery, by GitHub's own wait when it
  named one. Nothing is given up on: an operator sees what waits, and why, with `spec2ship webhook spool`.
- **Restarts.** The spool is on disk, so a restarted webhook drains what its last process left; a job
  caught half-way is simply carried out again, which its idempotency makes safe (`execute.py`).
- **Housekeeping.** Finished deliveries are forgotten after `keep_s`; every `report_every_s` while
  anything waits, one log line says how much, for how long and the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from workers.webhook.execute import GitHubUnavailable
from workers.webhook.jobs import AnyJob, Disposition, Outcome, PostReply, target
from workers.webhook.jsonlog import clip
from workers.webhook.runs import TemporalUnavailable
from workers.webhook.spool import Done, Entry, Pending, Retry, Spool, SpoolError, Unreadable

log = logging.getLogger("spec2ship.webhook")

Execute = Callable[[str, AnyJob], Awaitable[Outcome]]


@dataclass
class Backoff:
    """Doubling waits from `first_s` up to `most_s`."""

    first_s: float = 0.5
    most_s: float = 30.0

    def after(self, attempts: int) -> float:
        return float(min(self.most_s, self.first_s * 2 ** max(0, attempts - 1)))


class Drain:
    """Runs as one task on the webhook's event loop (`start`), `concurrency` deliveries at a time."""

    COALESCE_S = 0.002
    POLL_S = 0.01

    def __init__(self, spool: Spool, execute: Execute, *, concurrency: int = 32, keep_s: float = 3 * 86400,
                 backoff: Backoff | None = None, idle_s: float = 1.0, report_every_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._spool = spool
        self._execute = execute
        self._concurrency = concurrency
        self._keep_s = keep_s
        self._backoff = backoff or Backoff()
        self._idle_s = idle_s
        self._report_every_s = report_every_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_seqs: dict[str, int] = {}
        self._pauses = 0  # Temporal failures in a row
        self._paused_until = 0.0
        self._seen_version = -1
        self.temporal_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start draining on the running loop (again, if an earlier loop ended); idempotent."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._running.clear()
        self._running_seqs.clear()
        self._task = loop.create_task(self._run(), name="webhook-drain")

    def wake(self) -> None:
        """A delivery was spooled: look now rather than at the next idle tick."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Carry out what is due for up to `grace_s` (a replica scaled away leaves as little behind as it
        can), then stop; whatever is left stays in the spool for the next process on it."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.until_idle(), timeout=grace_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._running.values()):
            task.cancel()

    async def until_idle(self) -> None:
        """Until nothing is in progress and nothing is due, or the drain is paused (Temporal away: what is due
        then waits for the pause). For tests and shutdown; it starts the drain if it is not running."""
        self.start()
        while True:
            if not self._running and (self.paused_for_s > 0 or await self._spool.count_due() == 0):
                return
            if self._task is not None and self._task.done():
                self._task.result()  # a crashed drain raises here instead of waiting forever
            self.wake()
            await asyncio.sleep(0.01)

    @property
    def in_progress(self) -> int:
        return len(self._running)

    @property
    def paused_for_s(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    # --- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        last_prune = last_report = 0.0
        while True:
            now = self._clock()
            if now - last_prune >= min(self._keep_s, 3600.0):
                last_prune = now
                await self._housekeeping("prune")
            if now - last_report >= self._report_every_s:
                last_report = now
                await self._housekeeping("report")
            started = 0
            if now >= self._paused_until and len(self._running) < self._concurrency:
                started = await self._take()
            if started == 0:
                wait = self._idle_s if now >= self._paused_until else min(self._idle_s, self._paused_until - now)
                await self._wait_for_work(max(wait, 0.001))

    async def _wait_for_work(self, limit_s: float) -> None:
        """Until woken (a delivery spooled by this process, one finished), the spool changed (a delivery
        spooled by the ingress in another process: SQLite's data version moves), or `limit_s` passed."""
        deadline = self._clock() + limit_s
        self._wakeup.clear()
        while True:
            remaining = deadline - self._clock()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, min(self.POLL_S, remaining)))
            except TimeoutError:
                pass
            else:
                await asyncio.sleep(self.COALESCE_S)  # let the others arriving now join the next look
                return
            if remaining <= self.POLL_S:
                return
            try:
                version = await self._spool.data_version()
            except SpoolError:
                return
            if version != self._seen_version:
                self._seen_version = version
                return

    async def _take(self) -> int:
        """Start what is due, oldest first, keeping each run's deliveries in order; returns how many."""
        free = self._concurrency - len(self._running)
        try:
            due = await self._spool.due(limit=free, skip=list(self._running_seqs.values()))
        except SpoolError as error:
            log.error("drain: %s", error)
            return 0
        # At most one per run, never one in progress or behind one: the spool offers the first of each run's
        # queue and skips what is running (whose queue then offers nothing).
        for found in due:
            work = self._unreadable(found) if isinstance(found, Unreadable) else self._carry_out(found)
            self._begin(found.key, found.seq, work)
        return len(due)

    def _begin(self, key: str, seq: int, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            finally:
                self._running.pop(key, None)
                self._running_seqs.pop(key, None)
                self._wakeup.set()

        self._running_seqs[key] = seq
        self._running[key] = asyncio.get_running_loop().create_task(run(), name=f"delivery {key}")

    async def _carry_out(self, pending: Pending) -> None:
        fields = {"delivery": clip(pending.key), "event": pending.event, "workflow_id": target(pending.job),
                  "attempt": pending.attempts + 1}
        result: Done | Retry
        try:
            outcome = await self._execute(pending.key, pending.job)
        except TemporalUnavailable as error:
            if self._pause(str(error)):  # one warning per pause, not one per delivery tried in it
                log.warning("drain paused for %.1f s: %s", self.paused_for_s, error, extra=fields)
            result = Retry(key=pending.key, error=str(error), next_at=self._paused_until)
        except GitHubUnavailable as error:
            wait = max(self._backoff.after(pending.attempts + 1), error.retry_after_s or 0.0)
            result = Retry(key=pending.key, error=str(error), next_at=self._clock() + wait)
            log.warning("delivery waits for GitHub (%.0f s): %s", wait, error, extra=fields)
        except Exception as error:  # a fault of ours: keep the delivery, say so, keep draining the others
            wait = self._backoff.after(pending.attempts + 1)
            result = Retry(key=pending.key, error=f"{type(error).__name__}: {error}", next_at=self._clock() + wait)
            log.exception("delivery failed; tried again in %.0f s", wait, extra=fields)
        else:
            if self._pauses and outcome.workflow_id is not None:
                self._resume()
            follow_ups = [Entry(key=f"{pending.key}/reply/{n}", event=pending.event, job=PostReply(reply=reply))
                          for n, reply in enumerate(outcome.replies)]
            result = Done(key=pending.key, outcome=outcome, follow_ups=follow_ups)
            log.info("delivery %s: %s", outcome.disposition.value, outcome.reason,
                    extra={**fields, "disposition": outcome.disposition.value,
                           "waited_ms": round((self._clock() - pending.received_at) * 1000)})
        await self._record(result)

    async def _unreadable(self, found: Unreadable) -> None:
        log.error("delivery dropped: %s", found.error, extra={"delivery": clip(found.key)})
        outcome = Outcome(disposition=Disposition.ignored, reason=found.error)
        await self._record(Done(key=found.key, outcome=outcome))

    async def _record(self, result: Done | Retry) -> None:
        try:
            await self._spool.finish(result)
        except SpoolError as error:
            # The delivery stays pending and is carried out again: safe, since every job is idempotent.
            log.error("drain: outcome not recorded: %s", error, extra={"delivery": clip(result.key)})

    def _pause(self, error: str) -> bool:
        """One pause per attempt window: the deliveries tried together fail together, and count once.
        True when this failure began a pause."""
        self.temporal_error = error
        now = self._clock()
        if now < self._paused_until:
            return False
        self._pauses += 1
        self._paused_until = now + self._backoff.after(self._pauses)
        return True

    def _resume(self) -> None:
        log.info("drain: Temporal answers again after %d failed attempt(s)", self._pauses)
        self._pauses = 0
        self._paused_until = 0.0
        self.temporal_error = None

    async def _housekeeping(self, what: str) -> None:
        try:
            if what == "prune":
                removed = await self._spool.prune(self._keep_s)
                if removed:
                    log.info("spool: forgot %d finished deliveries older than %.0f h", removed, self._keep_s / 3600)
                return
            stats = await self._spool.stats()
        except SpoolError as error:
            log.error("spool: %s", error)
            return
        if stats.pending:
            log.info("spool: %d deliveries waiting, the oldest for %.0f s; last error: %s", stats.pending,
                     stats.oldest_pending_age_s(self._clock()) or 0.0, stats.last_error or "none",
                     extra={"spool_pending": stats.pending, "spool_path": stats.path})

