"""Workspace: a worker lends its own queue, and makes a working copy of the run's branch there."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import WorkspaceCalls
    from contracts.workspace import PrepareWorkspaceInput
    from workflows.options import CLAIM_WORKSPACE, WORKSPACE_GIT
    from workflows.spec_to_ship.context import RunContext


async def prepare_workspace(run: RunContext) -> None:
    assert run.spec is not None
    queue = await workflow.execute_activity_method(
        WorkspaceCalls.claim_workspace_queue, **CLAIM_WORKSPACE, summary="find a worker to hold the workspace")
    prefix = f"issue-{run.request.issue_number}-" if run.request.issue_number else ""
    branch = f"spec2ship/{prefix}{run.spec.slug}"
    run.workspace = await run.stage("workspace", workflow.execute_activity_method(
        WorkspaceCalls.prepare_workspace,
        PrepareWorkspaceInput(repo=run.request.repo, branch=branch, run_key=run.workflow_id),
        task_queue=queue, **WORKSPACE_GIT, summary=f"working copy on {branch}"))
