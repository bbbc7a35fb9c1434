"""The webhook's one dependency on Temporal: start a run, signal it, send it an update.

`Runs` is the narrow surface the drain uses, so the contract tests hand in a recorder and `TemporalRuns`
(tested against the real dev server) translates Temporal's errors into the few outcomes a job can have.
Every call carries a short RPC deadline, so a Temporal that does not answer pauses the drain instead of
holding it. Nothing here runs while GitHub waits for an answer: deliveries are answered once spooled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.names import SPEC_TO_SHIP
from contracts.runs import ForgeEvent, HumanAction, SpecToShipInput
from workers.webhook.dedup import START_CONFLICT_POLICY, START_REUSE_POLICY

RPC_TIMEOUT = timedelta(seconds=6)


class RunNotFound(LookupError):
    """No open run has this workflow id (never started, or already finished)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no open spec2ship run {workflow_id}")
        self.workflow_id = workflow_id


class RunClosed(RuntimeError):
    """The issue's run already finished without failing; adding the label again does not restart it."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"the run {workflow_id} already finished; open a new issue for a new change, or use "
            "`/spec2ship retry` while a failed run is still open"
        )
        self.workflow_id = workflow_id


class UpdateRejected(ValueError):
    """The run refused the update (its validator, or its handler failed); the message is the run's reason."""


class UpdatePending(TimeoutError):
    """The update was sent but had no outcome within the deadline (no worker running, or a slow handler).

    Waiting for the outcome rather than for acceptance is deliberate: the SDK reports a validator's
    rejection only with the outcome, and the run's update handlers are expected to return quickly."""


class TemporalUnavailable(ConnectionError):
    """Temporal could not be reached, or answered with a server error: the drain tries again later."""


class TemporalRefused(ValueError):
    """Temporal refused the call as malformed (INVALID_ARGUMENT): trying again cannot help."""


class Runs(Protocol):
    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        """Start the run, or join the open one with this id; returns its run id."""
        ...

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent, request_id: str) -> None:
        """Signal the open run; a second signal with the same `request_id` is dropped by Temporal."""
        ...

    async def update(self, workflow_id: str, update: str, action: HumanAction, update_id: str) -> None:
        """Send the update and wait for its outcome, so a refusal can be answered on the thread."""
        ...

    async def healthy(self) -> bool: ...


def _unavailable(error: RPCError, doing: str) -> TemporalUnavailable | TemporalRefused:
    """Everything but a malformed call is worth retrying: an unreachable server, and also a refusal an
    operator can fix (a namespace, a permission) while the job waits in the spool."""
    message = f"Temporal failed while {doing} ({error.status.name}: {error.message})"
    if error.status is RPCStatusCode.INVALID_ARGUMENT:
        return TemporalRefused(message)
    return TemporalUnavailable(message)


class TemporalRuns:
    """`Runs` over a real Temporal client."""

    def __init__(self, client: Client, rpc_timeout: timedelta = RPC_TIMEOUT) -> None:
        self._client = client
        self._timeout = rpc_timeout

    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        try:
            handle = await self._client.start_workflow(
                SPEC_TO_SHIP,
                run_input,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=START_CONFLICT_POLICY,
                id_reuse_policy=START_REUSE_POLICY,
                rpc_timeout=self._timeout,
            )
        except WorkflowAlreadyStartedError:
            raise RunClosed(workflow_id) from None
        except RPCError as error:
            raise _unavailable(error, f"starting {workflow_id}") from None
        return handle.first_execution_run_id or handle.result_run_id or ""

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent, request_id: str) -> None:
        """Through the service call itself: the SDK's `signal` picks a random request id, and the drain needs
        its own so that a retried job is not a second signal (Temporal drops a repeated request id)."""
        request = SignalWorkflowExecutionRequest(
            namespace=self._client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            signal_name=signal,
            identity=self._client.identity,
            request_id=request_id,
        )
        request.input.payloads.extend(await self._client.data_converter.encode([event]))
        try:
            await self._client.workflow_service.signal_workflow_execution(request, retry=True, timeout=self._timeout)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFound(workflow_id) from None
            raise _unavailable(error, f"signalling {signal} to {workflow_id}") from None

    async def update(self, workflow_id: str, update: str, action: HumanAction, update_id: str) -> None:
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            await handle.execute_update(update, action, id=update_id, rpc_timeout=self._timeout)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise UpdateRejected(str(getattr(cause, "message", None) or cause or error)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise UpdatePending(f"{update} on {workflow_id} was not accepted within {self._timeout}") from None
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFound(workflow_id) from None
            raise _unavailable(error, f"sending {update} to {workflow_id}") from None

    async def healthy(self) -> bool:
        try:
            return await self._client.service_client.check_health(timeout=self._timeout)
        except RPCError:
            return False


TemporalFactory = Callable[[], Awaitable["Client | Runs"]]


class TemporalConnection:
    """Connects on first use and keeps the connection; a failed connect is tried again on the next call.

    The factory returns a Temporal `Client` (wrapped in `TemporalRuns`) or, in tests, any `Runs`."""

    def __init__(self, factory: TemporalFactory, rpc_timeout: timedelta) -> None:
        self._factory = factory
        self._timeout = rpc_timeout
        self._runs: Runs | None = None
        self._lock = asyncio.Lock()

    async def runs(self) -> Runs:
        if self._runs is not None:
            return self._runs
        async with self._lock:
            if self._runs is None:
                try:
                    made = await asyncio.wait_for(self._factory(), timeout=self._timeout.total_seconds())
                except (OSError, RuntimeError, TimeoutError) as error:
                    # temporalio raises RuntimeError for a failed connect.
                    raise TemporalUnavailable(f"cannot connect to Temporal: {error}") from None
                self._runs = TemporalRuns(made, self._timeout) if isinstance(made, Client) else made
            return self._runs
