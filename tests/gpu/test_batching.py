"""Dynamic batching on the real tiny model: fewer generate calls, own answers, own limits, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from doubles.tiny_model import build_tiny_model, skip_without_gpu_extra

from activities.agents.batching import Batcher, BatcherClosedError, FinishReason, Generation, RowControl
from activities.agents.hf_local import HFLocalModel
from contracts.agents import Message

LONG = 4000  # about as long as the tiny model's context allows: seconds of generation, to cancel midway


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> HFLocalModel:
    skip_without_gpu_extra()
    return HFLocalModel(build_tiny_model(tmp_path_factory.mktemp("batching") / "tiny"))


def prompt(model: HFLocalModel, text: str) -> list[int]:
    return model.encode([Message(role="user", content=text)]).ids


class Counting:
    """The real model, counting generate calls and the rows of each."""

    def __init__(self, model: HFLocalModel) -> None:
        self.model = model
        self.batch_sizes: list[int] = []

    def generate_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int], controls: Sequence[RowControl],
        temperature: float,
    ) -> list[Generation]:
        self.batch_sizes.append(len(prompts))
        return self.model.generate_batch(prompts, max_new_tokens, controls, temperature)


async def test_concurrent_requests_share_generate_calls_and_each_gets_its_own_answer(model: HFLocalModel) -> None:
    prompts = [prompt(model, f"Request {i}: " + "add a test " * i) for i in range(6)]
    limits = [3, 5, 8, 13, 8, 5]
    alone = [model.generate_batch([p], [n], [RowControl()])[0] for p, n in zip(prompts, limits, strict=True)]
    counting = Counting(model)
    batcher = Batcher(counting, max_batch=8)

    together = await asyncio.gather(*(batcher.submit(p, n) for p, n in zip(prompts, limits, strict=True)))

    assert len(counting.batch_sizes) < len(prompts)
    assert max(counting.batch_sizes) > 1
    assert (batcher.stats.batches, batcher.stats.requests) == (len(counting.batch_sizes), len(prompts))
    assert [g.tokens for g in together] == [g.tokens for g in alone]  # the right answer reached the right caller
    assert len({tuple(g.tokens) for g in together}) > 1
    for generation, limit in zip(together, limits, strict=True):
        assert len(generation.tokens) <= limit
        if generation.finish_reason is FinishReason.length:
            assert len(generation.tokens) == limit
        else:
            assert generation.finish_reason is FinishReason.stop
            assert generation.tokens[-1] in model.eos_token_ids


async def test_a_full_batch_splits_into_batches_of_max_batch(model: HFLocalModel) -> None:
    counting = Counting(model)
    batcher = Batcher(counting, max_batch=3)
    results = await asyncio.gather(*(batcher.submit(prompt(model, f"item {i}"), 2) for i in range(7)))
    assert len(results) == 7
    assert max(counting.batch_sizes) == 3
    assert sum(counting.batch_sizes) == 7


async def test_a_request_cancelled_while_queued_leaves_its_batch(model: HFLocalModel) -> None:
    counting = Counting(model)
    batcher = Batcher(counting, max_batch=8, max_wait_s=0.5)  # a wide window: cancel before it closes
    tasks = [asyncio.create_task(batcher.submit(prompt(model, f"job {i}"), 4)) for i in range(3)]
    while batcher.queued < 3:
        await asyncio.sleep(0)
    tasks[1].cancel()

    first, second, third = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(second, asyncio.CancelledError)
    assert isinstance(first, Generation) and isinstance(third, Generation)
    assert counting.batch_sizes == [2]
    assert batcher.stats.cancelled_queued == 1


async def test_cancelling_one_running_request_does_not_disturb_the_other(model: HFLocalModel) -> None:
    batcher = Batcher(model, max_batch=8, progress_interval_s=0.0)
    started = {0: asyncio.Event(), 1: asyncio.Event()}
    keep_limit = 24
    keeper = asyncio.create_task(
        batcher.submit(prompt(model, "keep me"), keep_limit, on_progress=lambda n: started[0].set())
    )
    doomed = asyncio.create_task(
        batcher.submit(prompt(model, "cancel me"), LONG, on_progress=lambda n: started[1].set())
    )
    await started[1].wait()
    assert batcher.running == 2
    doomed.cancel()
    kept = await keeper
    with pytest.raises(asyncio.CancelledError):
        await doomed

    alone = model.generate_batch([prompt(model, "keep me")], [keep_limit], [RowControl()])[0]
    assert kept.tokens == alone.tokens
    assert batcher.stats.cancelled_running == 1


async def test_a_batch_whose_callers_all_left_stops_generating(model: HFLocalModel) -> None:
    batcher = Batcher(model, max_batch=8, progress_interval_s=0.0)
    progress: list[int] = []
    generating = asyncio.Event()

    def seen(tokens: int) -> None:
        progress.append(tokens)
        generating.set()

    tasks = [asyncio.create_task(batcher.submit(prompt(model, f"long {i}"), LONG, on_progress=seen)) for i in range(2)]
    await generating.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The next request runs only after the cancelled batch has returned from generate.
    after = await batcher.submit(prompt(model, "next"), 2)

    assert len(after.tokens) <= 2
    cancelled_batch = batcher.history[0]
    assert (cancelled_batch.size, cancelled_batch.cancelled_while_running) == (2, 2)
    assert 0 < cancelled_batch.steps < LONG
    assert batcher.stats.cancelled_running == 2


async def test_progress_is_reported_on_the_event_loop(model: HFLocalModel) -> None:
    batcher = Batcher(model, max_batch=8, progress_interval_s=0.0)
    loop = asyncio.get_running_loop()
    reports: list[tuple[int, bool]] = []

    def seen(tokens: int) -> None:
        reports.append((tokens, asyncio.get_running_loop() is loop))

    await batcher.submit(prompt(model, "count"), 6, on_progress=seen)
    assert reports
    assert all(on_loop for _, on_loop in reports)
    counts = [tokens for tokens, _ in reports]
    assert counts == sorted(counts) and 1 <= counts[-1] <= 6


async def test_a_failing_generate_fails_every_request_of_its_batch() -> None:
    class Broken:
        def generate_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                           controls: Sequence[RowControl], temperature: float) -> list[Generation]:
            raise RuntimeError("CUDA out of memory")

    batcher = Batcher(Broken(), max_batch=4)
    results = await asyncio.gather(*(batcher.submit([1, 2, 3], 4) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    assert batcher.stats.batches == 0  # only successful batches are counted


async def test_a_closed_batcher_refuses_and_fails_what_was_queued(model: HFLocalModel) -> None:
    batcher = Batcher(model, max_batch=8, max_wait_s=5.0)
    queued = asyncio.create_task(batcher.submit(prompt(model, "queued"), 4))
    while batcher.queued < 1:
        await asyncio.sleep(0)
    await batcher.aclose()
    with pytest.raises(BatcherClosedError, match="shut down before this call ran"):
        await queued
    with pytest.raises(BatcherClosedError, match="closed"):
        await batcher.submit(prompt(model, "late"), 4)


def test_it_needs_a_positive_batch_size() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(object(), max_batch=0)  # type: ignore[arg-type]

