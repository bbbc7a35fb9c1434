"""How a change ends on the forge: merged, closed with a note, abandoned, closed by a person, cancelled."""

from __future__ import annotations

from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ForgeCalls
    from contracts.forge import STATUS_LABELS, CloseChangeInput, MergeInput, MergeOutcome, PullRequestState
    from contracts.gate import Policy
    from contracts.runs import HumanAction, RunState
    from workflows.options import FORGE_CALL
    from workflows.spec_to_ship.context import RunContext, cause_of
    from workflows.spec_to_ship.report import publish_evidence


async def merge(run: RunContext, policy: Policy, by: HumanAction | None = None) -> bool:
    """Merge, and end the run; False when the user's checkout is in the way (the run waits for a person again)."""
    assert run.pr is not None
    if run.pr_closed is not None:
        pr_closed_elsewhere(run)
        return True
    result = await run.stage("merge", workflow.execute_activity_method(
        ForgeCalls.merge_pull_request,
        MergeInput(repo=run.request.repo, pr=run.pr, method=policy.merge_method, delete_branch=run.delete_branches),
        **FORGE_CALL, summary=f"merge PR #{run.pr.number}"))
    run.update_pr(result.pr)
    if result.outcome is MergeOutcome.checkout_blocked:
        run.status.reasons = [*run.status.reasons, f"merge held: {result.message}"]
        return False
    who = f" (approved by {by.actor})" if by else ""
    branch = result.branch
    kept = [branch.note] if branch is not None and not branch.deleted and branch.note else []
    if result.landed:
        run.merge_sha = result.merge_sha
        run.approved_by = by.actor if by else None
        run.end(RunState.merged, [*run.status.reasons, f"merged{who} as {result.merge_sha or '?'}", *kept])
        await publish_evidence(run)
        return True
    run.end(RunState.failed, [*run.status.reasons, f"merge refused ({result.outcome.value}): {result.message}"])
    await publish_evidence(run)
    return True


async def close(run: RunContext, note: str, ending: str = "rejected") -> None:
    """Close the PR (kept for the record, labelled with how it ended) and delete its branch as the policy
    says; when no PR was opened, delete the half-made branch in any case."""
    if run.pr is not None or run.workspace is not None:
        result = await workflow.execute_activity_method(
            ForgeCalls.close_change,
            CloseChangeInput(repo=run.request.repo, branch=run.workspace.branch if run.workspace else "", pr=run.pr,
                             note=note, delete_branch=run.pr is None or run.delete_branches,
                             label=STATUS_LABELS[ending], issue_number=run.request.issue_number),
            **FORGE_CALL, summary="close the change")
        if result is not None:
            run.update_pr(result.pr)


async def abandon(run: RunContext, reason: str) -> NoReturn:
    """End before a decision: nothing half-made stays (no PR: the branch goes too)."""
    await close(run, f"spec2ship abandoned this change: {reason}", ending="failed")
    raise run.fail([reason])


def pr_closed_elsewhere(run: RunContext) -> None:
    event = run.pr_closed
    assert event is not None
    if run.pr is not None:
        run.update_pr(run.pr.model_copy(update={"state": PullRequestState.merged if event.merged
                                                else PullRequestState.closed}))
    if event.merged:
        run.end(RunState.merged, [f"merged outside spec2ship by {event.actor or 'someone'}"])
    else:
        run.end(RunState.rejected, [f"the pull request was closed by {event.actor or 'someone'}"])


async def stage_failed(run: RunContext, error: ActivityError) -> None:
    """A stage's activity failed for good: end as failed with the reason, and close what the run made."""
    reason = f"{run.status.stage} failed: {cause_of(error)}"
    try:
        await close(run, f"spec2ship stopped: {reason}", ending="failed")
    except ActivityError as closing:
        workflow.logger.warning("could not close the change after %s: %s", reason, closing)
    run.end(RunState.failed, [reason])


async def cancelled(run: RunContext) -> None:
    who = run.cancel.actor if run.cancel else "someone"
    await close(run, f"cancelled by {who}", ending="cancelled")
    run.end(RunState.cancelled, [f"cancelled by {who}: {run.cancel.reason if run.cancel else ''}"])
