"""The ModelEvidence entity workflow: fed by the ledger activity, deduplicated, queried, replayable,
and carried through continue-as-new without losing a signal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.agents.model_activities import read_model_stats
from activities.ledger.activities import LedgerActivities
from contracts.agents import Role
from contracts.ledger import OutcomeRecord
from contracts.names import MODEL_STATS, RECORD_MODEL_OUTCOME, ledger_id, model_evidence_id
from contracts.runs import RunState
from contracts.selection import EvidenceStats, ModelOutcome
from workflows.model_evidence import ModelEvidence
from workflows.service_ledger import ServiceLedger


def outcome(kind: str, service: str, n: int, state: RunState, models: dict[str, str], verdict: str = "approve",
            at: datetime | None = None) -> OutcomeRecord:
    finished = (at or datetime(2025, 5, 1, tzinfo=UTC)) + timedelta(minutes=n)
    return OutcomeRecord(workflow_id=f"spec2ship/{service}/run-{n}", service=service, team="t", spec_title="s",
                         kind=kind, state=state, decision="merge", level="L5", review_verdict=verdict,
                         models=models, tokens=1000 + n, cost_usd=0.01, started_at=finished - timedelta(minutes=3),
                         finished_at=finished)


@asynccontextmanager
async def evidence_worker(client: Client, task_queue: str, kind: str, service: str) -> AsyncIterator[None]:
    """The workflows as the real worker registers them; both entities are terminated afterwards, since a
    workflow left running on the shared time-skipping server stops time skipping for every later test."""
    async with Worker(client, task_queue=task_queue, workflows=[ModelEvidence, ServiceLedger]):
        try:
            yield
        finally:
            for workflow_id in (model_evidence_id(kind), ledger_id(service)):
                with suppress(RPCError):  # never started
                    await client.get_workflow_handle(workflow_id).terminate("test finished")


async def test_outcomes_recorded_by_the_ledger_activity_become_evidence(
    skip_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = skip_env.client
    kind, service = f"kind-{uuid.uuid4().hex[:8]}", f"svc-{uuid.uuid4().hex[:8]}"
    ledger = LedgerActivities(client, task_queue)
    assert await read_model_stats(client, kind) == []  # nothing recorded yet: no workflow, no evidence
    async with evidence_worker(client, task_queue, kind, service):
        runs = [
            outcome(kind, service, 1, RunState.merged, {"coder": "alpha", "reviewer": "beta"}),
            outcome(kind, service, 2, RunState.rejected, {"coder": "alpha", "reviewer": "beta"}),
            outcome(kind, service, 3, RunState.merged, {"coder": "beta", "reviewer": "scripted:/r.yaml"}),
            outcome(kind, service, 4, RunState.expired, {"coder": "alpha"}),  # says nothing about the coder
        ]
        for run in runs:
            await ledger.record_outcome(run)
        await ledger.record_outcome(runs[0])  # the activity retried: counted once
        handle = client.get_workflow_handle(model_evidence_id(kind))
        await handle.signal(RECORD_MODEL_OUTCOME, ModelOutcome(  # another kind's outcome: ignored
            key="elsewhere", kind="docs", role=Role.coder, model="alpha", success=True, at=datetime.now(UTC)))
        stats = await handle.query(MODEL_STATS, result_type=EvidenceStats)
        assert await read_model_stats(client, kind) == stats.stats
        history = await handle.fetch_history()

    table = {(s.role.value, s.model): (s.successes, s.runs) for s in stats.stats}
    assert table == {("coder", "alpha"): (1, 2), ("coder", "beta"): (1, 1), ("reviewer", "beta"): (1, 2)}
    assert stats.kind == kind and stats.runs == 5
    alpha = next(s for s in stats.stats if s.model == "alpha")
    assert alpha.tokens == 1001 + 1002 and round(alpha.cost_usd, 6) == 0.02
    # The recorded history replays on the current code: the workflow is deterministic.
    await Replayer(workflows=[ModelEvidence], data_converter=pydantic_data_converter).replay_workflow(history)


# --- continue-as-new on a dev server that suggests it early --------------------------------------



async def test_continue_as_new_keeps_every_outcome(eager_env: WorkflowEnvironment, task_queue: str) -> None:
    client = eager_env.client
    kind, service = f"kind-{uuid.uuid4().hex[:8]}", f"svc-{uuid.uuid4().hex[:8]}"
    ledger = LedgerActivities(client, task_queue)
    runs = [outcome(kind, service, n, RunState.merged if n % 3 else RunState.failed, {"coder": f"m{n % 2}"})
            for n in range(60)]
    async with evidence_worker(client, task_queue, kind, service):
        await ledger.record_outcome(runs[0])
        handle = client.get_workflow_handle(model_evidence_id(kind))
        first_run = (await handle.describe()).run_id
        for offset in range(0, len(runs), 10):
            batch = runs[offset: offset + 10]
            # Each run twice, concurrently: retried signals racing each other and continue-as-new.
            await asyncio.gather(*(ledger.record_outcome(r) for r in (*batch, *batch)))
        stats = await _settled(client, kind, len(runs))
        description = await handle.describe()

    assert {s.model: (s.successes, s.runs) for s in stats.stats} == {"m0": (20, 30), "m1": (20, 30)}
    assert description.run_id != first_run, "the evidence never continued as new: the test proved nothing"


async def _settled(client: Client, kind: str, expected: int) -> EvidenceStats:
    handle = client.get_workflow_handle(model_evidence_id(kind))
    stats = EvidenceStats(kind=kind, runs=0)
    for _ in range(200):
        stats = await handle.query(MODEL_STATS, result_type=EvidenceStats)
        if stats.runs >= expected:
            break
        await asyncio.sleep(0.05)
    return stats
