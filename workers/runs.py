"""Client-side operations on runs, shared by the CLI, the demo and tests: start, wait, steer, list."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.config import data_dir
from activities.forge.gitcli import Git, GitError
from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import SPEC_TO_SHIP, STATUS, spec_to_ship_id
from contracts.runs import HumanAction, RunState, RunStatus, SpecToShipInput
from rules.redact import environment_secrets, redact_shapes
from specs.models import Spec
from specs.parser import parse_spec
from workers.inputs import SCRIPT_LIMIT, InputFileError, read_text_input
from workers.stack import UI_URL_FILE

DEFAULT_UI = "http://localhost:8233"


class RunCommandError(Exception):
    """The command could not do its job; the message says why and what to do."""


class RunSummary(BaseModel):
    """The CLI's `--json` shape for one run."""

    workflow_id: str
    state: RunState
    stage: str
    decision: str | None = None
    reasons: list[str] = Field(default_factory=list)
    checks: list[dict[str, str]] = Field(default_factory=list)
    pr: dict[str, object] | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    spec_title: str = ""
    service: str = ""
    ui_url: str = ""

    @classmethod
    def of(cls, status: RunStatus) -> RunSummary:
        return cls(
            workflow_id=status.workflow_id, state=status.state, stage=status.stage, decision=status.decision,
            reasons=status.reasons, checks=[{"id": c.id, "status": c.status.value} for c in status.checks],
            pr=status.pr.model_dump(mode="json") if status.pr else None, tokens=status.tokens,
            cost_usd=status.cost_usd, spec_title=status.spec_title, service=status.service,
            ui_url=ui_url(status.workflow_id),
        )


def ui_base() -> str:
    """SPEC2SHIP_UI_URL, else the UI of the stack `spec2ship up` started (it writes its address), else :8233."""
    configured = os.environ.get("SPEC2SHIP_UI_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    started = data_dir() / UI_URL_FILE
    with contextlib.suppress(OSError):
        return started.read_text().strip().rstrip("/") or DEFAULT_UI
    return DEFAULT_UI


def ui_url(workflow_id: str, namespace: str | None = None) -> str:
    base = ui_base()
    space = namespace or os.environ.get("TEMPORAL_NAMESPACE", "default")
    return f"{base}/namespaces/{space}/workflows/{quote(workflow_id, safe='')}"


def check_repository(path: Path) -> Path:
    if not path.exists():
        raise RunCommandError(f"--repo {path}: no such folder")
    try:
        probe = Git(path).run("rev-parse", "--show-toplevel", check=False)
    except GitError as error:  # not a folder, or no git installed
        raise RunCommandError(f"--repo {path}: {error}") from error
    if not probe.ok:
        raise RunCommandError(f"--repo {path}: not a git repository (run `git init` there, or point --repo at one)")
    return Path(probe.stdout.strip())


def resolve_agent(value: str | None) -> str | None:
    """Make `scripted:FILE` / `patch:FILE` absolute, so the worker finds the file whatever its folder."""
    if value is None:
        return None
    for prefix in ("scripted:", "patch:"):
        if value.startswith(prefix):
            path = Path(value.removeprefix(prefix)).expanduser()
            try:
                read_text_input(path, "scripted turns" if prefix == "scripted:" else "patch", SCRIPT_LIMIT)
            except InputFileError as error:
                raise RunCommandError(f"{prefix}{error}") from None
            return prefix + str(path.resolve())
    return value


async def start_run(client: Client, spec_file: Path, repo: Path, agents: AgentChoice, *, task_queue: str,
                    workflow_id: str | None = None, requested_by: str = "cli") -> tuple[WorkflowHandle[object,
                                                                                           RunStatus], Spec]:
    """Read and validate the spec and the repository here (errors are the user's to fix), then submit the run."""
    try:
        text = read_text_input(spec_file, "spec")
    except InputFileError as error:
        raise RunCommandError(str(error)) from None
    spec = parse_spec(text, str(spec_file))  # SpecError carries located problems; the caller prints them
    root = check_repository(repo)
    ref = RepoRef(kind=ForgeKind.local, location=str(root))
    handle = await submit_run(client, ref, text, spec_file.name, agents, task_queue=task_queue,
                              workflow_id=workflow_id or fresh_run_id(ref, spec.slug), title=spec.title,
                              summary=f"{spec.title} ({spec.service}, team {spec.team})", requested_by=requested_by)
    return handle, spec


def fresh_run_id(ref: RepoRef, slug: str) -> str:
    """The spec's id plus when it started: running a spec again is a new run, and the earlier one stays listed."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{spec_to_ship_id(ref, slug)}/{stamp}-{uuid.uuid4().hex[:4]}"


async def submit_run(client: Client, ref: RepoRef, text: str, name: str, agents: AgentChoice, *, task_queue: str,
                     workflow_id: str, title: str = "", summary: str = "",
                     requested_by: str = "cli") -> WorkflowHandle[object, RunStatus]:
    """Start SpecToShip on an inline spec as it is: the workflow itself validates it (and says where it is wrong)."""
    # The workflow's input is history: a credential pasted into the spec must not reach it.
    text = redact_shapes(text, environment_secrets(os.environ))
    return await client.start_workflow(
        SPEC_TO_SHIP,
        SpecToShipInput(repo=ref, spec=SpecSource(kind="inline", text=text, path=name), agents=agents,
                        requested_by=requested_by),
        id=workflow_id, task_queue=task_queue, result_type=RunStatus, memo={"title": title or name},
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        static_summary=summary or title or name,
        static_details=f"spec `{name}` for {ref.display}, requested by {requested_by}",
    )


async def status_of(client: Client, workflow_id: str) -> RunStatus:
    """The run's status; a closed workflow reports how it really ended, whatever its last status said."""
    handle = client.get_workflow_handle(workflow_id, result_type=RunStatus)
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise RunCommandError(f"no run {workflow_id!r}: `spec2ship list` shows the runs") from None
        raise
    if described.status is not WorkflowExecutionStatus.RUNNING:
        return await closed_status(handle, described.status)
    result: RunStatus = await handle.query(STATUS, result_type=RunStatus)
    return result


async def closed_status(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus | None) -> RunStatus:
    """How a closed run ended: its own final status, or why Temporal closed it (failure, termination, timeout)."""
    try:
        result: RunStatus = await handle.result()
        return result
    except WorkflowFailureError as error:
        why = _failure_message(error.cause)
    state = {
        WorkflowExecutionStatus.TERMINATED: RunState.terminated,
        WorkflowExecutionStatus.TIMED_OUT: RunState.timed_out,
        WorkflowExecutionStatus.CANCELED: RunState.cancelled,
    }.get(status or WorkflowExecutionStatus.FAILED, RunState.failed)
    return RunStatus(workflow_id=handle.id, state=state, stage="done",
                     reasons=[f"the workflow {state.value.replace('_', ' ')}: {why}"])


def _failure_message(failure: BaseException) -> str:
    """The innermost useful message: an activity's or child's own failure, not its wrapper's."""
    while isinstance(failure, ActivityError | ChildWorkflowError) and failure.cause is not None:
        failure = failure.cause
    return failure.message if isinstance(failure, FailureError) else str(failure)


async def wait_for_decision(handle: WorkflowHandle[Any, Any], timeout: float | None = None,
                            poll_s: float = 0.3) -> RunStatus:
    """Until the run merged, was rejected, failed, expired, or waits for a human; or its workflow closed,
    however it closed (a workflow that fails never says so in its own status)."""

    async def poll() -> RunStatus:
        while True:
            described = await handle.describe()
            if described.status is not WorkflowExecutionStatus.RUNNING:
                return await closed_status(handle, described.status)
            status: RunStatus = await handle.query(STATUS, result_type=RunStatus)
            if status.has_decision:
                return status
            await asyncio.sleep(poll_s)

    return await asyncio.wait_for(poll(), timeout)


async def steer(client: Client, workflow_id: str, update: str, action: HumanAction) -> str:
    handle = client.get_workflow_handle(workflow_id, result_type=RunStatus)
    try:
        receipt: str = await handle.execute_update(update, action, id=f"{update}-{uuid.uuid4()}", result_type=str)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(cause or error)
        raise RunCommandError(f"{update} refused for {workflow_id}: {message}") from None
    except RPCError as error:
        raise RunCommandError(await _not_steerable(handle, update, error)) from None
    return receipt


async def _not_steerable(handle: WorkflowHandle[Any, Any], update: str, error: RPCError) -> str:
    """Why an update could not reach a run: it does not exist, it already ended, or Temporal said no."""
    try:
        described = await handle.describe()
    except RPCError as missing:
        if missing.status is RPCStatusCode.NOT_FOUND:
            return f"no run {handle.id!r}: `spec2ship list` shows the runs"
        return f"{update} could not reach {handle.id}: {missing.message}"
    if described.status is not WorkflowExecutionStatus.RUNNING:
        ended = await closed_status(handle, described.status)
        return f"run {handle.id} already ended ({ended.state.value}); there is nothing left to {update}"
    return f"{update} could not reach {handle.id}: {error.message}"


async def list_runs(client: Client, limit: int = 50) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    async for execution in client.list_workflows(f"WorkflowType = '{SPEC_TO_SHIP}'", limit=limit):
        attributes = execution.search_attributes
        rows.append({
            "workflow_id": execution.id,
            "status": execution.status.name.lower() if execution.status else "unknown",
            "title": (await execution.memo()).get("title", ""),
            "stage": _first(attributes.get("Spec2shipStage")),
            "state": _first(attributes.get("Spec2shipState")),
            "decision": _first(attributes.get("Spec2shipDecision")),
            "service": _first(attributes.get("Spec2shipService")),
            "started": execution.start_time.isoformat() if execution.start_time else "",
        })
    return rows


def _first(values: object) -> str:
    if isinstance(values, list) and values:
        return str(values[0])
    return ""
