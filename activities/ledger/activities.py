"""Activities that talk to a service's ledger: record outcomes, record later outcomes, read trust.

Writes use signal-with-start, so the first outcome of a service creates its ledger and a ledger that
already runs just gets the signal; the ledger deduplicates, so activity retries are harmless.
`record_outcome` also feeds the ModelEvidence workflow of the change's kind, the same way, so model
selection learns from every finished run.
The module-level helpers are shared with the CLI (`workers/cli_ledger.py`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities import config
from contracts.ledger import LaterOutcomeInput, LedgerState, OutcomeRecord, ReadTrustInput, TrustQuery, TrustReport
from contracts.names import (
    MODEL_EVIDENCE,
    RECORD_LATER,
    RECORD_MODEL_OUTCOME,
    RECORD_OUTCOME,
    SERVICE_LEDGER,
    TRUST,
    ledger_id,
    model_evidence_id,
)
from contracts.selection import EvidenceState, ModelOutcome
from rules.selection import model_outcomes


class LedgerNotFoundError(LookupError):
    """No ledger workflow exists for the service: nothing was ever recorded for it."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"no ledger for service {service!r} (workflow id {ledger_id(service)}): nothing has been recorded "
            "for it yet. Check the service name in the spec, or ship a change for it first."
        )
        self.service = service


async def signal_ledger(client: Client, task_queue: str, service: str, signal: str, payload: BaseModel) -> None:
    """Signal the service's ledger, starting it (empty) on `task_queue` if it does not run yet."""
    await client.start_workflow(
        SERVICE_LEDGER,
        LedgerState(service=service),
        id=ledger_id(service),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[payload],
    )


async def signal_model_evidence(client: Client, task_queue: str, outcome: ModelOutcome) -> None:
    """Signal the evidence of the outcome's kind, starting it (empty) on `task_queue` if it does not run yet."""
    await client.start_workflow(
        MODEL_EVIDENCE,
        EvidenceState(kind=outcome.kind),
        id=model_evidence_id(outcome.kind),
        task_queue=task_queue,
        start_signal=RECORD_MODEL_OUTCOME,
        start_signal_args=[outcome],
    )


async def existing_ledger(client: Client, service: str) -> WorkflowHandle[Any, Any]:
    """The handle of the service's ledger; LedgerNotFoundError when there is none."""
    handle = client.get_workflow_handle(ledger_id(service))
    try:
        await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise LedgerNotFoundError(service) from error
        raise
    return handle


async def query_trust(client: Client, service: str, bar: float | None = None) -> TrustReport:
    """The ledger's trust report, explained against `bar`; LedgerNotFoundError when the service has no ledger."""
    handle = client.get_workflow_handle(ledger_id(service))
    # A ledger whose queue no worker polls would hold a query for ~30 s; fail fast and let the caller retry.
    timeout = timedelta(seconds=10)
    try:
        # A terminated ledger (an operator's reset) holds no live record: the next outcome starts a fresh one.
        if (await handle.describe(rpc_timeout=timeout)).status is not WorkflowExecutionStatus.RUNNING:
            raise LedgerNotFoundError(service)
        if bar is None:
            return await handle.query(TRUST, result_type=TrustReport, rpc_timeout=timeout)
        return await handle.query(TRUST, TrustQuery(bar=bar), result_type=TrustReport, rpc_timeout=timeout)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise LedgerNotFoundError(service) from error
        raise


class LedgerActivities:
    """The ledger's activities; the client and the ledger's task queue come in through the constructor."""

    def __init__(self, client: Client, task_queue: str | None = None) -> None:
        self._client = client
        self._task_queue = task_queue or config.task_queue()

    @activity.defn
    async def record_outcome(self, record: OutcomeRecord) -> None:
        await signal_ledger(self._client, self._task_queue, record.service, RECORD_OUTCOME, record)
        for outcome in model_outcomes(record):
            await signal_model_evidence(self._client, self._task_queue, outcome)

    @activity.defn
    async def record_later_outcome(self, later: LaterOutcomeInput) -> None:
        await signal_ledger(self._client, self._task_queue, later.service, RECORD_LATER, later.outcome)

    @activity.defn
    async def read_trust(self, request: ReadTrustInput) -> TrustReport:
        """The service's trust; a service without a ledger has trust 0 ("no record yet")."""
        try:
            return await query_trust(self._client, request.service, request.bar)
        except LedgerNotFoundError:
            return TrustReport(
                service=request.service,
                trust=0.0,
                runs=0,
                successes=0.0,
                explanation=["no record yet"],
                bar=request.bar if request.bar is not None else TrustQuery().bar,
            )
