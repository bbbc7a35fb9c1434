"""Workspace: a worker lends its own queue, and makes a working copy of the run's branch there."""

from __future__ import annotations

import hashlib

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import WorkspaceCalls
    from contracts.workspace import PrepareWorkspaceInput
    from workflows.options import CLAIM_WORKSPACE, PREPARE_WORKSPACE
    from workflows.spec_to_ship.context import RunContext


def branch_name(run: RunContext) -> str:
    """One branch per run: an issue's run is the only one of its issue; a spec run again gets a new branch."""
    assert run.spec is not None
    if run.request.issue_number:
        return f"spec2ship/issue-{run.request.issue_number}-{run.spec.slug}"
    return f"spec2ship/{run.spec.slug}-{hashlib.sha1(run.workflow_id.encode()).hexdigest()[:6]}"


async def prepare_workspace(run: RunContext) -> None:
    assert run.spec is not None
    queue = await workflow.execute_activity_method(
        WorkspaceCalls.claim_workspace_queue, **CLAIM_WORKSPACE, summary="find a worker to hold the workspace")
    branch = branch_name(run)
    run.workspace = await run.stage("workspace", workflow.execute_activity_method(
        WorkspaceCalls.prepare_workspace,
        PrepareWorkspaceInput(repo=run.request.repo, branch=branch, run_key=run.workflow_id),
        task_queue=queue, **PREPARE_WORKSPACE, summary=f"working copy on {branch}"))
