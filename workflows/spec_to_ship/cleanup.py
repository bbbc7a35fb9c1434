"""Cleanup, whatever the ending: remove the workspace, release the unused budget, record the outcome."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import BudgetCalls, ForgeCalls, LedgerCalls, WorkspaceCalls
    from contracts.budget import ReleaseInput
    from contracts.evidence import CheckStatus
    from contracts.forge import STATUS_LABELS, LabelIssueInput
    from contracts.ledger import OutcomeRecord
    from contracts.runs import RunState
    from workflows.options import FORGE_CALL, LEDGER_CALL, REMOVE_WORKSPACE
    from workflows.patches import ISSUE_ENDING_LABEL
    from workflows.spec_to_ship.context import RunContext


async def cleanup(run: RunContext) -> None:
    if run.workspace is not None:
        try:
            await workflow.execute_activity_method(
                WorkspaceCalls.remove_workspace, run.workspace, task_queue=run.workspace.task_queue,
                **REMOVE_WORKSPACE, summary="remove the workspace")
        except ActivityError as error:
            workflow.logger.warning("workspace not removed (a janitor will): %s", error)
    # A run that asked but heard nothing may still have been granted late: releasing is harmless either way.
    unanswered = run.admission_asked and run.admission is None
    if run.spec is not None and (run.reserved or unanswered):
        await workflow.execute_activity_method(
            BudgetCalls.release_budget, ReleaseInput(team=run.spec.team, run_id=run.workflow_id),
            **LEDGER_CALL, summary="release the unused reservation")
    await label_issue_without_pr(run)
    if run.spec is not None and run.status.state is not RunState.running:
        await workflow.execute_activity_method(LedgerCalls.record_outcome, outcome(run), **LEDGER_CALL,
                                               summary=f"ledger of {run.spec.service}")


async def label_issue_without_pr(run: RunContext) -> None:
    """A run with a PR labels the PR and the issue as it reports; one that ended before a PR labels the
    issue here. A forge that refuses leaves only a warning: the label is a courtesy, not the outcome."""
    ended = run.status.state not in (RunState.running, RunState.awaiting_human)
    label = STATUS_LABELS.get(run.status.state.value) if ended else None
    issue = run.request.issue_number
    if run.pr is not None or issue is None or label is None or not workflow.patched(ISSUE_ENDING_LABEL.id):
        return
    try:
        await workflow.execute_activity_method(
            ForgeCalls.label_issue, LabelIssueInput(repo=run.request.repo, issue_number=issue, label=label),
            **FORGE_CALL, summary=f"{label} on issue #{issue}")
    except ActivityError as error:
        workflow.logger.warning("status label not set on issue #%s: %s", issue, error)


def outcome(run: RunContext) -> OutcomeRecord:
    """The run as the service's ledger keeps it: trust and DORA are computed from these."""
    assert run.spec is not None
    checks = run.status.checks
    return OutcomeRecord(
        workflow_id=run.workflow_id, service=run.spec.service, team=run.spec.team,
        spec_title=run.spec.title, kind=run.spec.kind.value, state=run.status.state,
        decision=run.decision.decision.value if run.decision else "none",
        level=run.level.value if run.level else "", reasons=run.status.reasons,
        checks_passed=sum(1 for c in checks if c.status is CheckStatus.passed),
        checks_failed=sum(1 for c in checks if c.status in {CheckStatus.failed, CheckStatus.error}),
        review_verdict=run.reviews[-1].verdict.value if run.reviews else "none",
        human_verdicts=run.status.human_actions, models=run.models, tokens=run.status.tokens,
        cost_usd=run.status.cost_usd, agent_made=not (run.request.agents.coder or "").startswith("patch:"),
        first_commit_at=run.started, started_at=run.started, finished_at=workflow.now(),
        merge_sha=run.merge_sha, requested_by=run.request.requested_by, approved_by=run.approved_by,
    )
