"""A tiny workflow that makes N concurrent `call_model` activities on one task queue.

It stands in for the agent loop (workflows/agent_run.py) where only the model calls matter: the GPU
worker's tests and the inference benchmark drive the real activity path through it (workflow task ->
activity task on the inference queue -> GPU worker -> result back through the server).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.agents import ModelRequest, ModelTurn


class CallModelsInput(BaseModel):
    requests: list[ModelRequest]
    task_queue: str
    heartbeat_timeout_s: float = 30.0
    schedule_to_start_timeout_s: float | None = None
    concurrency: int | None = None  # at most this many calls in flight; None: all at once


class CallModelsOutput(BaseModel):
    turns: list[ModelTurn]


@workflow.defn
class CallModels:
    @workflow.run
    async def run(self, request: CallModelsInput) -> CallModelsOutput:
        limit = asyncio.Semaphore(request.concurrency or max(1, len(request.requests)))

        async def call(model_request: ModelRequest) -> ModelTurn:
            async with limit:
                return await workflow.execute_activity(
                    "call_model",
                    model_request,
                    result_type=ModelTurn,
                    task_queue=request.task_queue,
                    start_to_close_timeout=timedelta(minutes=5),
                    schedule_to_start_timeout=(
                        timedelta(seconds=request.schedule_to_start_timeout_s)
                        if request.schedule_to_start_timeout_s else None
                    ),
                    heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )

        turns = await asyncio.gather(*(call(model_request) for model_request in request.requests))
        return CallModelsOutput(turns=list(turns))
