"""The webhook's one dependency on Temporal: start a run, signal it, send it an update.

`Runs` is the narrow surface the handlers use, so the contract tests hand in a recorder and
`TemporalRuns` (tested against the real dev server) translates Temporal's errors into the few outcomes
a delivery can have. Every call carries a short RPC deadline: a delivery must be answered within
GitHub's 10 seconds even when Temporal is slow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

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
    """Temporal could not be reached or answered with a server error; GitHub may redeliver later."""


class Runs(Protocol):
    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        """Start the run, or join the open one with this id; returns its run id."""
        ...

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent) -> None: ...

    async def update(self, workflow_id: str, update: str, action: HumanAction, update_id: str) -> None:
        """Send the update and wait for its outcome, so a refusal can be answered on the thread."""
        ...

    async def healthy(self) -> bool: ...


def _unavailable(error: RPCError, doing: str) -> TemporalUnavailable:
    return TemporalUnavailable(f"Temporal failed while {doing} ({error.status.name}: {error.message})")


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

    async def signal(self, workflow_id: str, signal: str, event: ForgeEvent) -> None:
        try:
            await self._client.get_workflow_handle(workflow_id).signal(signal, event, rpc_timeout=self._timeout)
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
