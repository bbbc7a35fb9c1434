"""The ServiceLedger: folding old runs into aggregates, and the workflow on real Temporal servers."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_records import outcome_record
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.ledger.activities import LedgerActivities
from contracts.ledger import (
    DoraQuery,
    DoraReport,
    LaterOutcome,
    LaterOutcomeInput,
    LaterSignal,
    LedgerState,
    OutcomeRecord,
    ReadTrustInput,
)
from contracts.names import DORA, LEDGER_STATE, OUTCOMES, RECORD_OUTCOME, ledger_id
from contracts.runs import RunState
from rules.dora import dora_report
from rules.trust import trust, trust_report
from workflows.service_ledger import ServiceLedger, add_later, add_outcome

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def outcome(
    service: str,
    finished: datetime,
    state: RunState = RunState.merged,
    *,
    agent: bool = True,
    lead: timedelta = timedelta(hours=3),
    sha: str | None = None,
) -> OutcomeRecord:
    number = next(_ids)
    return outcome_record(
        f"spec2ship/test/{number}",
        service,
        number,
        finished,
        state,
        agent_made=agent,
        first_commit_at=finished - lead,
        started_at=finished - lead - timedelta(minutes=10),
        merge_sha=sha or f"sha{number}",
    )


# --- folding, without a server -------------------------------------------------------------------


def test_a_retried_signal_does_not_double_count_but_a_rerun_of_the_same_spec_does() -> None:
    state = LedgerState(service="payments")
    first = outcome("payments", NOW)
    assert add_outcome(state, first) is True
    assert add_outcome(state, first.model_copy()) is False
    rerun = first.model_copy(update={"started_at": NOW, "finished_at": NOW + timedelta(hours=1)})
    assert add_outcome(state, rerun) is True
    assert len(state.outcomes) == 2
    item = LaterOutcome(kind=LaterSignal.revert, sha="x", at=NOW)
    assert add_later(state, item) is True
    assert add_later(state, item.model_copy()) is False
    assert len(state.later) == 1


def test_a_folded_run_is_still_deduplicated() -> None:
    state = LedgerState(service="payments", max_outcomes=2)
    records = [outcome("payments", NOW - timedelta(days=d)) for d in (3, 2, 1)]
    for record in records:
        add_outcome(state, record)
    assert state.history.folded_runs == 1
    assert add_outcome(state, records[0]) is False
    assert [r.workflow_id for r in state.outcomes] == [r.workflow_id for r in records[1:]]


def test_a_revert_of_a_folded_merge_still_counts() -> None:
    state = LedgerState(service="payments", max_outcomes=1)
    old = outcome("payments", NOW - timedelta(days=20), sha="old")
    add_outcome(state, old)
    add_outcome(state, outcome("payments", NOW - timedelta(days=1)))
    before = trust(state.outcomes, state.later, NOW, history=state.history)
    add_later(state, LaterOutcome(kind=LaterSignal.revert, sha="old", at=NOW - timedelta(days=10)))
    assert state.history.evicted_merges["old"].failed is True
    report = dora_report("payments", state.outcomes, state.later, DoraQuery(), NOW, history=state.history)
    assert report.agent.failed_changes == 1 and report.agent.merges == 2
    assert trust(state.outcomes, state.later, NOW, history=state.history) < before


def test_folded_incidents_keep_their_time_to_restore() -> None:
    state = LedgerState(service="payments", max_later=1)
    add_outcome(state, outcome("payments", NOW - timedelta(days=9), sha="bad"))
    start = NOW - timedelta(days=8)
    add_later(state, LaterOutcome(kind=LaterSignal.incident, sha="bad", at=start))
    add_later(state, LaterOutcome(kind=LaterSignal.restored, sha="bad", at=start + timedelta(hours=5)))
    add_later(state, LaterOutcome(kind=LaterSignal.revert, sha="other", at=start + timedelta(days=1)))
    assert [item.sha for item in state.later] == ["other"]
    assert state.history.folded_later == 2
    keys = dora_report("payments", state.outcomes, state.later, DoraQuery(), NOW, history=state.history).agent
    assert keys.time_to_restore_median_s == pytest.approx(5 * 3600, rel=0.091)
    assert keys.change_failure_rate == 1.0


ages = st.floats(min_value=0, max_value=150, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.tuples(ages, st.sampled_from([RunState.merged, RunState.rejected, RunState.failed]), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    later=st.lists(st.tuples(st.sampled_from(list(LaterSignal)), st.integers(0, 50), st.floats(10, 150)), max_size=8),
)
def test_folding_keeps_trust_and_dora_close_to_the_full_record(
    runs: list[tuple[float, RunState, bool]], later: list[tuple[LaterSignal, int, float]]
) -> None:
    records = [
        outcome("payments", NOW - timedelta(days=age), state, agent=agent, lead=timedelta(hours=1 + i % 30))
        for i, (age, state, agent) in enumerate(runs)
    ]
    shas = [r.merge_sha for r in records if r.merge_sha] or ["none"]
    items = [
        LaterOutcome(kind=kind, sha=shas[pick % len(shas)], at=NOW - timedelta(days=age)) for kind, pick, age in later
    ]
    full = LedgerState(service="payments", max_outcomes=10_000, max_later=10_000)
    small = LedgerState(service="payments", max_outcomes=5, max_later=2)
    for state in (full, small):
        for record in records:
            add_outcome(state, record)
        for item in items:
            add_later(state, item)
    exact = trust(full.outcomes, full.later, NOW, history=full.history)
    folded = trust(small.outcomes, small.later, NOW, history=small.history)
    assert folded == pytest.approx(exact, abs=0.02)
    window = DoraQuery(since=datetime(2025, 3, 1, tzinfo=UTC), until=NOW)
    a = dora_report("payments", full.outcomes, full.later, window, NOW, history=full.history)
    b = dora_report("payments", small.outcomes, small.later, window, NOW, history=small.history)
    for mine, theirs in ((a.all, b.all), (a.agent, b.agent), (a.human, b.human)):
        assert (mine.merges, mine.failed_changes) == (theirs.merges, theirs.failed_changes)
        assert mine.restores + mine.open_incidents >= theirs.restores
        if mine.lead_time_median_s is not None:
            assert theirs.lead_time_median_s == pytest.approx(mine.lead_time_median_s, rel=0.091)


# --- the workflow on the time-skipping server ----------------------------------------------------


def _service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def ledger_worker(client: Client, task_queue: str, service: str) -> AsyncIterator[None]:
    """A worker for the ledger (registered as the real worker does); the ledger is terminated afterwards.

    A ledger left running keeps timers on a queue nobody polls, and the time-skipping server then
    refuses to skip time for every later test of the session.
    """
    ledger = LedgerActivities(client, task_queue)
    activities: list[Callable[..., Any]] = [ledger.record_outcome, ledger.record_later_outcome, ledger.read_trust]
    async with Worker(client, task_queue=task_queue, workflows=[ServiceLedger], activities=activities):
        try:
            yield
        finally:
            with suppress(RPCError):  # never started
                await client.get_workflow_handle(ledger_id(service)).terminate("test finished")


async def test_the_ledger_records_deduplicates_and_answers(skip_env: WorkflowEnvironment, task_queue: str) -> None:
    client = skip_env.client
    service = _service()
    ledger = LedgerActivities(client, task_queue)
    async with ledger_worker(client, task_queue, service):
        now = await skip_env.get_current_time()
        records = [
            outcome(service, now - timedelta(days=2)),
            outcome(service, now - timedelta(days=1), RunState.rejected),
            outcome(service, now - timedelta(hours=3), agent=False),
        ]
        for record in records:
            await ledger.record_outcome(record)
        await ledger.record_outcome(records[0])  # the activity retried: the signal arrives twice
        handle = client.get_workflow_handle(ledger_id(service))
        await handle.signal(RECORD_OUTCOME, outcome("elsewhere", now))  # sent to the wrong ledger: ignored

        stored = await handle.query(OUTCOMES, result_type=list[OutcomeRecord])
        assert [r.workflow_id for r in stored] == [r.workflow_id for r in records]
        report = await ledger.read_trust(ReadTrustInput(service=service))
        assert report.as_of is not None
        assert report == trust_report(service, records, [], report.as_of)
        assert report.runs == 2 and 0 < report.trust < report.point_estimate < 0.5  # the success is older
        low_bar = await ledger.read_trust(ReadTrustInput(service=service, bar=report.trust / 2))
        assert low_bar.bar == report.trust / 2 and low_bar.merges_to_clear == 0
        assert low_bar == trust_report(service, records, [], report.as_of, bar=report.trust / 2)
        dora = await handle.query(DORA, DoraQuery(), result_type=DoraReport)
        assert (dora.all.merges, dora.agent.merges, dora.human.merges) == (2, 1, 1)

        history = await handle.fetch_history()
    # The recorded history replays on the current code: the workflow is deterministic.
    await Replayer(workflows=[ServiceLedger], data_converter=pydantic_data_converter).replay_workflow(history)


async def test_an_unknown_service_has_no_trust_yet(skip_env: WorkflowEnvironment, task_queue: str) -> None:
    report = await LedgerActivities(skip_env.client, task_queue).read_trust(ReadTrustInput(service=_service()))
    assert (report.trust, report.runs, report.explanation) == (0.0, 0, ["no record yet"])


async def test_an_incident_takes_trust_away_until_its_window_ends(
    skip_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = skip_env.client
    service = _service()
    ledger = LedgerActivities(client, task_queue)
    async with ledger_worker(client, task_queue, service):
        await client.start_workflow(
            ServiceLedger.run,
            LedgerState(service=service, refresh_every=None),  # only the cap's end wakes it up
            id=ledger_id(service),
            task_queue=task_queue,
        )
        now = await skip_env.get_current_time()
        for hours in range(1, 16):
            await ledger.record_outcome(outcome(service, now - timedelta(hours=hours), sha=f"{service}-{hours}"))
        before = await ledger.read_trust(ReadTrustInput(service=service))
        assert before.trust > 0.7

        incident = LaterOutcome(kind=LaterSignal.incident, sha=f"{service}-1", at=now, note="checkout 500s")
        await ledger.record_later_outcome(LaterOutcomeInput(service=service, outcome=incident))
        await ledger.record_later_outcome(LaterOutcomeInput(service=service, outcome=incident))  # retried
        during = await ledger.read_trust(ReadTrustInput(service=service))
        assert during.trust == 0.0
        assert during.capped_until == now + timedelta(days=7)
        state = await client.get_workflow_handle(ledger_id(service)).query(LEDGER_STATE, result_type=LedgerState)
        assert len(state.later) == 1

        await skip_env.sleep(timedelta(days=8))
        after = await ledger.read_trust(ReadTrustInput(service=service))
        assert after.as_of is not None and after.as_of >= now + timedelta(days=7)  # it woke when the cap ended
        assert after.capped_until is None
        assert 0 < after.trust < before.trust  # back, but the failure and its penalty still count


# --- continue-as-new on a dev server that suggests it early --------------------------------------



async def _settled(client: Client, service: str, expected: int) -> list[OutcomeRecord]:
    """Query until the ledger holds `expected` outcomes (or 200 tries, then return what it holds)."""
    handle = client.get_workflow_handle(ledger_id(service))
    stored: list[OutcomeRecord] = []
    for _ in range(200):
        stored = await handle.query(OUTCOMES, result_type=list[OutcomeRecord])
        if len(stored) >= expected:
            break
        await asyncio.sleep(0.05)
    return stored


async def test_continue_as_new_loses_no_signal(eager_env: WorkflowEnvironment, task_queue: str) -> None:
    client = eager_env.client
    service = _service()
    ledger = LedgerActivities(client, task_queue)
    start = datetime.now(UTC) - timedelta(days=30)
    records = [outcome(service, start + timedelta(hours=i), sha=f"{service}-{i}") for i in range(50)]
    async with ledger_worker(client, task_queue, service):
        await ledger.record_outcome(records[0])
        first_run = (await client.get_workflow_handle(ledger_id(service)).describe()).run_id
        for offset in range(0, len(records), 10):
            batch = records[offset : offset + 10]
            # Each record twice, concurrently: retried signals racing each other and continue-as-new.
            await asyncio.gather(*(ledger.record_outcome(r) for r in (*batch, *batch)))
        revert = LaterOutcome(kind=LaterSignal.revert, sha=f"{service}-5", at=datetime.now(UTC))
        await ledger.record_later_outcome(LaterOutcomeInput(service=service, outcome=revert))

        stored = await _settled(client, service, len(records))
        handle = client.get_workflow_handle(ledger_id(service))
        state = await handle.query(LEDGER_STATE, result_type=LedgerState)
        description = await handle.describe()

    assert sorted(r.workflow_id for r in stored) == sorted(r.workflow_id for r in records)
    assert [later.sha for later in state.later] == [f"{service}-5"]
    assert description.run_id != first_run, "the ledger never continued as new: the test proved nothing"
