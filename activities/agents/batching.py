"""Dynamic batching of concurrent model calls into one `generate` per batch.

A GPU is busy for about as long generating 16 sequences side by side as generating one, so the GPU
worker's concurrent `call_model` activities are gathered here for a few milliseconds (or until a full
batch) and run as ONE batched generation in a worker thread, keeping the event loop free for Temporal's
polling and heartbeats. Generation is serialised: while one batch runs, new requests queue up and form
the next batch at once.

This module knows nothing of torch: the model is anything with `generate_batch` (see `BatchGenerator`);
`activities.agents.hf_local.HFLocalModel` is the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel


class FinishReason(StrEnum):
    stop = "stop"  # an end-of-sequence token
    length = "length"  # the request's own max_new_tokens
    cancelled = "cancelled"  # the caller went away while its row was generating


@dataclass
class Generation:
    """The new tokens of one request (the prompt excluded), cut at its own limit or first EOS."""

    tokens: list[int]
    finish_reason: FinishReason


class RowControl:
    """What generation consults at every step for one row of a batch.

    `cancelled` is set by the caller's side (the event loop) and read by the generation thread; a plain
    attribute is enough for that under the GIL. `report` is called by the generation thread.
    """

    def __init__(self, on_progress: Callable[[int], None] | None = None) -> None:
        self.cancelled = False
        self.tokens = 0
        self._on_progress = on_progress

    def report(self, tokens: int) -> None:
        self.tokens = tokens
        if self._on_progress is not None:
            self._on_progress(tokens)


class BatchGenerator(Protocol):
    """One batched generation: a row per prompt; rows stop at their own limit, EOS or cancellation."""

    def generate_batch(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        controls: Sequence[RowControl],
        temperature: float,
    ) -> list[Generation]: ...


class BatcherClosedError(RuntimeError):
    """The batcher was closed (the worker is shutting down) before this request was answered."""


class BatchRecord(BaseModel):
    """One generate call, for tests, the benchmark and logs."""

    size: int
    steps: int
    cancelled_while_running: int
    seconds: float


class BatcherStats(BaseModel):
    batches: int = 0
    requests: int = 0
    generated_tokens: int = 0
    cancelled_queued: int = 0
    cancelled_running: int = 0
    largest_batch: int = 0


@dataclass(eq=False)
class _Pending:
    prompt: list[int]
    max_new_tokens: int
    temperature: float
    control: RowControl
    future: asyncio.Future[Generation]
    arrived: float = field(default_factory=time.monotonic)
    running: bool = False


class Batcher:
    """Gathers concurrent `submit` calls into batches for one model.

    `max_wait_s` bounds the latency added to a lone request; `max_batch` bounds memory. The 20 ms
    default: the activity tasks of one burst reach the worker spread over 5-30 ms on the dev server
    (measured with 16 and 5 pollers), and a generation takes far longer than that. Only requests
    with the same temperature share a batch (one `generate` has one sampling setting). The runner task
    exists only while there is work, so an idle batcher holds no task on the event loop.
    """

    def __init__(
        self,
        generator: BatchGenerator,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.02,
        progress_interval_s: float = 0.25,
        history: int = 256,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be 1 or more, got {max_batch}")
        self._generator = generator
        self.max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._progress_interval_s = progress_interval_s
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._running: list[_Pending] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec2ship-generate")
        self._closed = False
        self.stats = BatcherStats()
        self.history: deque[BatchRecord] = deque(maxlen=history)

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    @property
    def running(self) -> int:
        """Rows of the batch generating now."""
        return len(self._running)

    async def submit(
        self,
        prompt: Sequence[int],
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        on_progress: Callable[[int], None] | None = None,
    ) -> Generation:
        """Generate for one prompt as part of a batch. Cancelling the awaiting task cancels the request.

        `on_progress(tokens)` runs on this event loop, in the caller's context, at most every
        `progress_interval_s` while the request's row is generating.
        """
        if self._closed:
            raise BatcherClosedError("the batcher is closed: the GPU worker is shutting down; the call will be retried")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be 1 or more, got {max_new_tokens}")
        loop = asyncio.get_running_loop()
        item = _Pending(
            prompt=list(prompt),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            control=RowControl(self._forwarder(loop, on_progress)),
            future=loop.create_future(),
        )
        self._pending.append(item)
        self._wake.set()
        if self._runner is None:
            self._runner = loop.create_task(self._run(), name="spec2ship-batcher")
        try:
            return await item.future
        except asyncio.CancelledError:
            self._cancel(item)
            raise

    def _cancel(self, item: _Pending) -> None:
        item.control.cancelled = True
        if item.running:
            self.stats.cancelled_running += 1
        elif item in self._pending:
            self._pending.remove(item)
            self.stats.cancelled_queued += 1

    def _forwarder(
        self, loop: asyncio.AbstractEventLoop, on_progress: Callable[[int], None] | None
    ) -> Callable[[int], None] | None:
        """Throttle progress from the generation thread and hand it to the loop, in the caller's context."""
        if on_progress is None:
            return None
        context = contextvars.copy_context()
        last = [0.0]

        def forward(tokens: int) -> None:
            now = time.monotonic()
            if now - last[0] < self._progress_interval_s:
                return
            last[0] = now
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
                loop.call_soon_threadsafe(on_progress, tokens, context=context)

        return forward

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather_window()
                batch = self._take()
                if batch:
                    await self._generate(loop, batch)
        finally:
            self._runner = None

    async def _gather_window(self) -> None:
        """Wait until the batch is full or the oldest request has waited `max_wait_s`."""
        deadline = self._pending[0].arrived + self._max_wait_s
        while len(self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    def _take(self) -> list[_Pending]:
        temperature = self._pending[0].temperature
        batch = [item for item in self._pending if item.temperature == temperature][: self.max_batch]
        for item in batch:
            self._pending.remove(item)
            item.running = True
        self._running = batch
        return batch

    async def _generate(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.monotonic()
        try:
            results = await loop.run_in_executor(
                self._executor,
                self._generator.generate_batch,
                [item.prompt for item in batch],
                [item.max_new_tokens for item in batch],
                [item.control for item in batch],
                batch[0].temperature,
            )
        except asyncio.CancelledError:
            # The batcher itself is being closed: stop the rows still generating and fail their callers.
            for item in batch:
                item.control.cancelled = True
                if not item.future.done():
                    item.future.set_exception(BatcherClosedError("the GPU worker shut down during generation"))
            raise
        except Exception as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        finally:
            for item in batch:
                item.running = False
            self._running = []
        if len(results) != len(batch):
            mismatch = RuntimeError(f"generate_batch answered {len(results)} rows for a batch of {len(batch)}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(mismatch)
            return
        self._record(batch, results, time.monotonic() - started)
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    def _record(self, batch: list[_Pending], results: list[Generation], seconds: float) -> None:
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.generated_tokens += sum(len(r.tokens) for r in results)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.history.append(
            BatchRecord(
                size=len(batch),
                steps=max((len(r.tokens) for r in results), default=0),
                cancelled_while_running=sum(1 for item in batch if item.control.cancelled),
                seconds=seconds,
            )
        )

    async def aclose(self) -> None:
        """Fail queued requests, stop a running batch, and release the generation thread."""
        self._closed = True
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(BatcherClosedError("the GPU worker shut down before this call ran"))
        runner = self._runner
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._executor.shutdown(wait=False, cancel_futures=True)
