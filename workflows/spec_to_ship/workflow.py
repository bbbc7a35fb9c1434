"""SpecToShip: one durable workflow takes a spec to a merged, rejected or escalated change.

spec ─► admit ─► write ─► open PR ─► review ─┬─► preview/validate ─► gate ─┬─► merge ─► record
                   ▲                         │                             └─► escalate ─► human
                   └──── request changes ◄───┘ (bounded rounds)

This module holds the workflow class: its queries, the handlers people and the forge use, and the
pipeline that strings the stages together. Each stage is a function of the run's context in a module
of its own (load, admit, workspace, write, validate, gate, escalate, endings, cleanup). Whatever the
ending (decision, failure, cancellation), the workspace is removed, the unused budget released and
the outcome recorded in the service's ledger.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.budget import AdmissionAnswer
    from contracts.gate import Decision
    from contracts.names import (
        ADMISSION,
        CI_COMPLETED,
        EVIDENCE,
        PR_CLOSED,
        SPEC_CHANGED,
        SPEC_TO_SHIP,
        STATUS,
        TIMELINE,
        TOKENS,
        TOOL_CALLS,
    )
    from contracts.runs import ForgeEvent, HumanAction, RunState, RunStatus, SpecToShipInput, StageRecord
    from contracts.workspace import ToolCallRecord
    from rules.protected import rules_for
    from specs.models import AutonomyLevel
    from workflows.patches import FOUR_EYES, STAGE_FAILURE_ENDS_RUN
    from workflows.spec_to_ship.admit import admit
    from workflows.spec_to_ship.cleanup import cleanup
    from workflows.spec_to_ship.context import RunContext, RunEnded
    from workflows.spec_to_ship.endings import cancelled, close, merge, pr_closed_elsewhere, stage_failed
    from workflows.spec_to_ship.escalate import await_human
    from workflows.spec_to_ship.gate import decide
    from workflows.spec_to_ship.humans import ACTIONS, HumanKind, OutcomeKind, four_eyes_refusal, refusal
    from workflows.spec_to_ship.load import load_spec, plan_agents
    from workflows.spec_to_ship.report import notify
    from workflows.spec_to_ship.validate import validate
    from workflows.spec_to_ship.workspace import prepare_workspace
    from workflows.spec_to_ship.write import write_and_review


@workflow.defn(name=SPEC_TO_SHIP)
class SpecToShip:
    @workflow.init
    def __init__(self, request: SpecToShipInput) -> None:
        self._run = RunContext(
            request=request, started=workflow.now(),
            status=RunStatus(workflow_id=workflow.info().workflow_id, state=RunState.running, stage="load_spec",
                             requested_by=request.requested_by))
        for kind in ACTIONS:
            self._handle(kind)

    # --- queries -------------------------------------------------------------------------------

    @workflow.query(name=STATUS)
    def status(self) -> RunStatus:
        return self._run.status

    @workflow.query(name=TIMELINE)
    def timeline(self) -> list[StageRecord]:
        return self._run.timeline

    @workflow.query(name=EVIDENCE)
    def evidence(self) -> str:
        return self._run.evidence

    @workflow.query(name=TOKENS)
    def tokens(self) -> int:
        return self._run.status.tokens

    @workflow.query(name=TOOL_CALLS)
    def tool_calls(self) -> list[ToolCallRecord]:
        """The audit record of every tool call of every agent in this run, in order."""
        return self._run.tool_calls

    # --- people: an Update (validated) and a Signal per row of humans.ACTIONS ------------------------

    def _handle(self, kind: HumanKind) -> None:
        def validate(action: HumanAction) -> None:
            run = self._run
            reason = refusal(kind, action, run.status) or four_eyes_refusal(
                kind, action, run.request.requested_by, run.four_eyes)
            if reason:
                raise ApplicationError(reason)

        def update(action: HumanAction) -> str:
            self._accept(kind, action)
            return f"{kind} recorded for {self._run.workflow_id}"

        def signal(action: HumanAction) -> None:
            run = self._run
            reason = refusal(kind, action, run.status)
            if reason is None:
                four_eyes = four_eyes_refusal(kind, action, run.request.requested_by, run.four_eyes)
                # Signals used to be taken from anyone; runs that predate four eyes replay as they ran.
                if four_eyes and workflow.patched(FOUR_EYES.id):
                    reason = four_eyes
            if reason:
                workflow.logger.warning("ignored %s signal from %s: %s", kind, action.actor, reason)
                return
            self._accept(kind, action)

        workflow.set_update_handler(kind.value, update, validator=validate)
        workflow.set_signal_handler(kind.value, signal)

    def _accept(self, kind: HumanKind, action: HumanAction) -> None:
        run = self._run
        if kind is HumanKind.cancel:
            run.cancel = action
            run.status.human_actions.append(f"cancel by {action.actor}: {action.reason}")
            return
        run.action = (kind, action)
        run.status.human_actions.append(f"{kind} by {action.actor}" + (f": {action.reason}" if action.reason else ""))

    # --- the forge tells us things ---------------------------------------------------------------

    @workflow.signal(name=PR_CLOSED)
    def pr_closed(self, event: ForgeEvent) -> None:
        self._run.pr_closed = event

    @workflow.signal(name=CI_COMPLETED)
    def ci_completed(self, event: ForgeEvent) -> None:
        self._run.ci_events[event.name or "ci"] = event

    @workflow.signal(name=ADMISSION)
    def admission(self, answer: AdmissionAnswer) -> None:
        """The team budget's answer to this run's admission request."""
        if answer.run_id == self._run.workflow_id:
            self._run.admission = answer

    @workflow.signal(name=SPEC_CHANGED)
    def spec_changed(self, event: ForgeEvent) -> None:
        self._run.spec_changed = True

    # --- the run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: SpecToShipInput) -> RunStatus:
        run = self._run
        try:
            await self._pipeline(run)
        except RunEnded:
            pass
        except ActivityError as error:
            # Older runs failed the workflow here, with no cleanup; they replay as they ran.
            if not workflow.patched(STAGE_FAILURE_ENDS_RUN.id):
                raise
            await stage_failed(run, error)
        except asyncio.CancelledError:
            run.end(RunState.cancelled, ["the workflow was cancelled"])
            await cleanup(run)
            raise
        await cleanup(run)
        return run.status

    async def _pipeline(self, run: RunContext) -> None:
        loaded = await load_spec(run)
        spec, policy = loaded.spec, loaded.policy
        # The policy of the default branch when the run started; a later reload (spec edited) keeps it.
        run.risk_rules = rules_for(policy)
        run.policy_source = loaded.policy_ref.describe() if loaded.policy_ref else None
        run.four_eyes = policy.four_eyes
        run.delete_branches = policy.delete_branches
        run.spec = spec
        level = AutonomyLevel.lowest(policy.level_for(spec.service), spec.autonomy)
        run.level = level
        plan = await plan_agents(run)
        await admit(run)
        await prepare_workspace(run)
        feedback: list[str] = []
        request = run.request
        max_rounds = request.max_review_rounds if request.max_review_rounds is not None else policy.max_review_rounds
        while True:
            stop_reason = await write_and_review(run, plan, feedback, max_rounds)
            criteria = await validate(run, spec, plan)
            decision = await decide(run, spec, level, policy, criteria, stop_reason)
            if decision.decision is Decision.merge and await merge(run, policy):
                return
            if decision.decision is Decision.reject:
                await close(run, f"spec2ship rejected this change: {'; '.join(decision.reasons)}")
                run.end(RunState.rejected, decision.reasons)
                return
            if decision.decision is Decision.comment_only:
                await notify(run, "spec2ship (L1, assisted): the proposed change and its evidence are above; "
                                  "nothing will be merged.")
                run.end(RunState.commented, decision.reasons)
                return
            outcome = await await_human(run, policy.escalation)
            while outcome.merges and not await merge(run, policy, by=outcome.action):
                # The user's checkout is in the way: the status says which files; the next approval retries.
                outcome = await await_human(run, policy.escalation)
            if outcome.merges:
                return
            if outcome.kind in {OutcomeKind.reject, OutcomeKind.override}:
                who = outcome.action.actor if outcome.action else "a human"
                reason = outcome.action.reason if outcome.action else ""
                await close(run, f"rejected by {who}: {reason}")
                run.end(RunState.rejected, [*decision.reasons, f"rejected by {who}: {reason}"])
                return
            if outcome.kind is OutcomeKind.expired:
                await notify(run, f"spec2ship: no decision within {policy.escalation.expire_after}; the run "
                                  "expired. The PR stays open for a person to finish.")
                run.end(RunState.expired, [*decision.reasons, f"no human decision within "
                                           f"{policy.escalation.expire_after}"])
                return
            if outcome.kind is OutcomeKind.pr_closed:
                pr_closed_elsewhere(run)
                return
            if outcome.kind is OutcomeKind.cancelled:
                await cancelled(run)
                return
            # request changes, retry or a changed spec: back to the coder.
            if outcome.kind is OutcomeKind.spec_changed:
                spec = (await load_spec(run)).spec
                run.spec = spec
                feedback = ["The spec was edited; re-read it and make the change match the new version."]
            elif outcome.kind is OutcomeKind.request_changes and outcome.action:
                feedback = [f"{outcome.action.actor} requests changes: {outcome.action.reason}"]
            else:
                feedback = ["A person asked for another attempt."]
            run.status.state = RunState.running
            run.status.awaiting_human_since = None
