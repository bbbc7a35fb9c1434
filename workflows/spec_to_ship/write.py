"""Write and review: the coder changes the workspace, the branch is published and the PR opened, the
deterministic and risk checks run, and the review agent gives its verdict; requested changes go
back to the coder for at most the policy's rounds."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ForgeCalls, WorkspaceCalls
    from contracts.agent_run import AgentStatus
    from contracts.agents import AgentPlan, Role
    from contracts.evidence import CriterionResult, ReviewComment, ReviewResult, ReviewVerdict
    from contracts.forge import OpenPullRequestInput
    from contracts.workspace import CheckChangeInput, PublishBranchInput, WorkspaceDiff
    from specs.models import AutonomyLevel
    from workflows import prompts
    from workflows.options import FORGE_CALL, WORKSPACE_GIT
    from workflows.spec_to_ship.agents import run_agent
    from workflows.spec_to_ship.context import RunContext
    from workflows.spec_to_ship.endings import abandon


async def write_and_review(run: RunContext, plan: AgentPlan, feedback: list[str], max_rounds: int) -> str | None:
    """Returns why the coder stopped early (budget, limits), if it did."""
    assert run.workspace is not None and run.spec is not None and plan.coder is not None
    for review_round in range(max_rounds + 1):
        run.status.round = review_round
        coder = await run_agent(run, Role.coder, plan.coder, prompts.coder_task(run.spec, feedback), review_round)
        if coder.status is AgentStatus.failed:
            await abandon(run, f"the coder failed: {coder.reason}")
        change: WorkspaceDiff = await run.stage("diff", workflow.execute_activity_method(
            WorkspaceCalls.diff_workspace, run.workspace,
            task_queue=run.workspace.task_queue, **WORKSPACE_GIT, summary="collect the change"))
        if not change.stat.files:
            reason = coder.reason or coder.final_message or "no explanation"
            await abandon(run, f"the coder produced no change ({coder.status.value}: {reason})")
        await publish(run, review_round)
        review = await review_change(run, plan, change, review_round)
        run.reviews.append(review)
        if coder.status is AgentStatus.stopped:
            return coder.reason
        if review.blocking_failures or review.verdict is not ReviewVerdict.request_changes:
            return None
        if review_round < max_rounds:
            feedback = [f"{c.path or ''}:{c.line or ''} {c.body}".strip() for c in review.comments] or [
                "The reviewer requested changes without comments."]
    return None


async def publish(run: RunContext, review_round: int) -> None:
    """Commit and push the branch; open the PR (not at L1, where agents only comment)."""
    workspace, spec = run.workspace, run.spec
    assert workspace is not None and spec is not None
    head = await run.stage("publish", workflow.execute_activity_method(
        WorkspaceCalls.publish_branch,
        PublishBranchInput(workspace=workspace, message=f"{spec.title}\n\nspec2ship round {review_round + 1}"
                           f" for {run.workflow_id}"),
        task_queue=workspace.task_queue, **WORKSPACE_GIT, summary="commit and push"))
    if run.level is AutonomyLevel.L1:
        return
    run.pr = await run.stage("open_pr", workflow.execute_activity_method(
        ForgeCalls.open_pull_request,
        OpenPullRequestInput(repo=run.request.repo, branch=workspace.branch, title=spec.title,
                             body=prompts.pr_body(spec, run.workflow_id), issue_number=run.request.issue_number),
        **FORGE_CALL, summary=f"pull request for {workspace.branch}"))
    if run.pr.head_sha != head:
        run.pr = run.pr.model_copy(update={"head_sha": head})
    run.status.pr = run.pr


async def review_change(run: RunContext, plan: AgentPlan, change: WorkspaceDiff, review_round: int) -> ReviewResult:
    """Scope, size, secret and risk checks; then the review agent, unless a check already failed."""
    workspace, spec = run.workspace, run.spec
    assert workspace is not None and spec is not None
    checks: list[CriterionResult] = await run.stage("review", workflow.execute_activity_method(
        WorkspaceCalls.check_change,
        CheckChangeInput(workspace=workspace, constraints=spec.constraints, risk=run.risk_rules),
        task_queue=workspace.task_queue, **WORKSPACE_GIT, summary="scope, size, secret and risk checks"))
    review = ReviewResult(round=review_round, verdict=ReviewVerdict.none, checks=checks)
    # Risk findings do not stop the review agent: the gate hands them to a person with its verdict.
    if review.blocking_failures or plan.reviewer is None:
        return review
    result = await run_agent(run, Role.reviewer, plan.reviewer, prompts.review_task(spec, change), review_round)
    review.reviewer_model = plan.reviewer.model
    verdict_args = result.final_tool.arguments if result.final_tool else {}
    verdict = verdict_args.get("verdict")
    if verdict in {"approve", "request_changes"}:
        review.verdict = ReviewVerdict(verdict)
        for comment in verdict_args.get("comments") or []:
            if isinstance(comment, dict) and comment.get("body"):
                review.comments.append(ReviewComment(
                    path=comment.get("path"), line=comment.get("line") if isinstance(comment.get("line"), int)
                    else None, body=str(comment["body"])))
        if verdict_args.get("summary"):
            review.comments.insert(0, ReviewComment(body=str(verdict_args["summary"])))
    else:
        review.verdict = ReviewVerdict.request_changes
        why = result.reason or "no submit_review call"
        review.comments.append(ReviewComment(body=f"the review agent gave no verdict ({why})"))
    return review
