"""Client-side operations on runs, shared by the CLI, the demo and tests: start, wait, steer, list."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from activities.forge.gitcli import Git, GitError
from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import SPEC_TO_SHIP, STATUS, spec_to_ship_id
from contracts.runs import HumanAction, RunState, RunStatus, SpecToShipInput
from specs.models import Spec
from specs.parser import parse_spec


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


def ui_url(workflow_id: str, namespace: str | None = None) -> str:
    base = os.environ.get("SPEC2SHIP_UI_URL", "http://localhost:8233").rstrip("/")
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
            if not path.is_file():
                raise RunCommandError(f"{prefix}{path}: no such file")
            return prefix + str(path.resolve())
    return value


async def start_run(client: Client, spec_file: Path, repo: Path, agents: AgentChoice, *, task_queue: str,
                    workflow_id: str | None = None, requested_by: str = "cli") -> tuple[WorkflowHandle[object,
                                                                                           RunStatus], Spec]:
    """Read and validate the spec and the repository here (errors are the user's to fix), then submit the run."""
    try:
        text = spec_file.read_text()
    except OSError as error:
        raise RunCommandError(f"{spec_file}: cannot read the spec ({error.strerror})") from error
    spec = parse_spec(text, str(spec_file))  # SpecError carries located problems; the caller prints them
    root = check_repository(repo)
    ref = RepoRef(kind=ForgeKind.local, location=str(root))
    handle = await submit_run(client, ref, text, spec_file.name, agents, task_queue=task_queue,
                              workflow_id=workflow_id or spec_to_ship_id(ref, spec.slug), title=spec.title,
                              requested_by=requested_by)
    return handle, spec


async def submit_run(client: Client, ref: RepoRef, text: str, name: str, agents: AgentChoice, *, task_queue: str,
                     workflow_id: str, title: str = "", requested_by: str = "cli") -> WorkflowHandle[object, RunStatus]:
    """Start SpecToShip on an inline spec as it is: the workflow itself validates it (and says where it is wrong)."""
    return await client.start_workflow(
        SPEC_TO_SHIP,
        SpecToShipInput(repo=ref, spec=SpecSource(kind="inline", text=text, path=name), agents=agents,
                        requested_by=requested_by),
        id=workflow_id, task_queue=task_queue, result_type=RunStatus, memo={"title": title or name},
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


async def status_of(client: Client, workflow_id: str) -> RunStatus:
    handle = client.get_workflow_handle(workflow_id, result_type=RunStatus)
    result: RunStatus = await handle.query(STATUS, result_type=RunStatus)
    return result


async def wait_for_decision(handle: WorkflowHandle[Any, Any], timeout: float | None = None,
                            poll_s: float = 0.3) -> RunStatus:
    """Until the run merged, was rejected, failed, expired, or waits for a human."""

    async def poll() -> RunStatus:
        while True:
            status: RunStatus = await handle.query(STATUS, result_type=RunStatus)
            if status.has_decision:
                return status
            await asyncio.sleep(poll_s)

    return await asyncio.wait_for(poll(), timeout)


async def steer(client: Client, workflow_id: str, update: str, action: HumanAction) -> str:
    handle = client.get_workflow_handle(workflow_id)
    try:
        receipt: str = await handle.execute_update(update, action, id=f"{update}-{uuid.uuid4()}", result_type=str)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(cause or error)
        raise RunCommandError(f"{update} refused for {workflow_id}: {message}") from error
    return receipt


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
