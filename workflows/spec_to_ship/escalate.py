"""Escalate: wait for a person, with a reminder, an escalation and an expiry from the policy.

The wait ends on the first of: a person's action (approve, reject, request changes, override, retry),
a cancellation, the PR closed on the forge, the spec edited, or the expiry.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.gate import EscalationPolicy
    from contracts.runs import RunState
    from workflows.spec_to_ship.context import RunContext
    from workflows.spec_to_ship.humans import HumanOutcome, OutcomeKind
    from workflows.spec_to_ship.report import notify, publish_evidence


async def await_human(run: RunContext, escalation: EscalationPolicy) -> HumanOutcome:
    run.action = None
    run.spec_changed = False
    run.status.state = RunState.awaiting_human
    since = workflow.now()
    run.status.awaiting_human_since = since
    run.set_stage("awaiting_human")
    await publish_evidence(run)
    # Protected paths and eroded tests go to the policy's risk owners, not the usual escalation chain.
    chosen = run.decision.escalate_to if run.decision and run.decision.escalate_to else escalation.owners
    owners = " ".join(f"@{owner}" for owner in chosen)
    how = f"`spec2ship approve|reject|request-changes {run.workflow_id} --reason ...`"
    await notify(run, f"spec2ship is waiting for a human decision: {how} or a `/spec2ship approve` comment. "
                      f"{owners}".strip())
    marks = sorted([(escalation.remind_after, "remind"), (escalation.escalate_after, "escalate"),
                    (escalation.expire_after, "expire")], key=lambda mark: mark[0])
    for after, mark in marks:
        remaining = since + after - workflow.now()
        workflow.set_current_details(
            f"waiting for a human since {since:%Y-%m-%d %H:%M} UTC ({', '.join(chosen) or 'no owners named'}); "
            f"next: {mark} at {since + after:%Y-%m-%d %H:%M} UTC. Approve with `spec2ship approve "
            f"{run.workflow_id} --reason ...`, reject, or request changes")
        if remaining.total_seconds() > 0:
            try:
                await workflow.wait_condition(lambda: _human_event(run), timeout=remaining,
                                              timeout_summary=f"{mark} after {_ago(after)} without a decision")
                return _take_human_event(run)
            except TimeoutError:
                pass
        elif _human_event(run):
            return _take_human_event(run)
        if mark == "remind":
            await notify(run, f"Reminder: this change has waited {_ago(after)} for a human decision. {owners}")
        elif mark == "escalate":
            await notify(run, f"Escalation: no decision after {_ago(after)}. {owners} please decide.".strip())
        else:
            return HumanOutcome(OutcomeKind.expired)
    return HumanOutcome(OutcomeKind.expired)


def _human_event(run: RunContext) -> bool:
    return run.action is not None or run.cancel is not None or run.pr_closed is not None or run.spec_changed


def _take_human_event(run: RunContext) -> HumanOutcome:
    if run.cancel is not None:
        return HumanOutcome(OutcomeKind.cancelled, run.cancel)
    if run.pr_closed is not None:
        return HumanOutcome(OutcomeKind.pr_closed)
    if run.action is not None:
        kind, action = run.action
        run.action = None
        return HumanOutcome(OutcomeKind(kind.value), action)
    run.spec_changed = False
    return HumanOutcome(OutcomeKind.spec_changed)


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f}h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f}m"
