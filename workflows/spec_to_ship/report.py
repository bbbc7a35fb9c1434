"""What the run tells people: the evidence report on the PR (with status and label), and comments."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ForgeCalls
    from contracts.evidence import CriterionResult
    from contracts.forge import STATUS_LABELS, CommitStatus, ForgeKind, NotifyInput, PublishEvidenceInput
    from contracts.gate import Decision
    from contracts.runs import RunState
    from rules.report import ReportInput, render_report
    from workflows.options import FORGE_CALL
    from workflows.spec_to_ship.context import RunContext


async def publish_evidence(run: RunContext, criteria: list[CriterionResult] | None = None) -> None:
    """Render the report (queryable as `evidence`) and keep the PR's one evidence comment, status and label."""
    assert run.spec is not None
    if criteria is not None:
        run.criteria = criteria
    run.evidence = render_report(ReportInput(
        workflow_id=run.workflow_id, spec_title=run.spec.title, service=run.spec.service,
        team=run.spec.team, criteria=run.criteria, preview=run.preview,
        reviews=run.reviews, decision=run.decision, plan=run.plan,
        tokens=run.status.tokens, cost_usd=run.status.cost_usd, human_actions=run.status.human_actions,
        policy_source=run.policy_source, opted_out=run.risk_rules.opted_out,
        requested_by=run.request.requested_by))
    if run.pr is None:
        return
    decision = run.decision.decision if run.decision else None
    state = run.status.state
    label, status = {
        RunState.merged: (STATUS_LABELS["merged"], CommitStatus.success),
        RunState.rejected: (STATUS_LABELS["rejected"], CommitStatus.failure),
        RunState.failed: (STATUS_LABELS["failed"], CommitStatus.failure),
        RunState.cancelled: (STATUS_LABELS["cancelled"], CommitStatus.failure),
    }.get(state, (STATUS_LABELS["awaiting_human"] if decision is Decision.escalate else STATUS_LABELS["running"],
                  CommitStatus.pending if decision is not Decision.reject else CommitStatus.failure))
    description = f"{state.value}: {decision.value if decision else 'running'}"
    await workflow.execute_activity_method(
        ForgeCalls.publish_evidence,
        PublishEvidenceInput(repo=run.request.repo, pr=run.pr, markdown=run.evidence, status=status,
                             status_description=description, label=label, issue_number=run.request.issue_number),
        **FORGE_CALL, summary="evidence report on the PR")


async def notify(run: RunContext, body: str) -> None:
    """A comment on the PR, or on the spec's issue before there is a PR (nowhere, for a GitHub run without either)."""
    if run.pr is None and run.request.issue_number is None and run.request.repo.kind is ForgeKind.github:
        return
    await workflow.execute_activity_method(
        ForgeCalls.notify, NotifyInput(repo=run.request.repo, body=body, pr=run.pr,
                                       issue_number=run.request.issue_number),
        **FORGE_CALL, summary="comment")
