"""SpecToShip: one durable workflow takes a spec to a merged, rejected or escalated change.

spec ─► admit ─► write ─► open PR ─► review ─┬─► preview/validate ─► gate ─┬─► merge ─► record
                   ▲                         │                             └─► escalate ─► human
                   └──── request changes ◄───┘ (bounded rounds)

Stages are activities (or AgentRun children) with their own timeouts and retry policies. Whatever
the ending (decision, failure, cancellation), the workspace is removed, the unused budget released
and the outcome recorded in the service's ledger.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from contracts.agent_run import AgentRunInput, AgentRunResult, AgentStatus, BudgetLink, RunLimits
    from contracts.agents import AgentPlan, Attribution, ModelChoice, PlanAgentsInput, Role
    from contracts.budget import ReleaseInput, ReserveInput, ReserveOutcome
    from contracts.evidence import (
        CheckStatus,
        CriterionResult,
        PreviewEvidence,
        ReviewComment,
        ReviewResult,
        ReviewVerdict,
    )
    from contracts.forge import (
        STATUS_LABELS,
        CloseChangeInput,
        CommitStatus,
        ForgeKind,
        LoadedSpec,
        LoadSpecInput,
        MergeInput,
        MergeOutcome,
        MergeResult,
        NotifyInput,
        OpenPullRequestInput,
        PublishEvidenceInput,
        PullRequest,
    )
    from contracts.gate import Decision, EscalationPolicy, GateDecision, GateInput, Policy, RiskRules
    from contracts.ledger import OutcomeRecord, ReadTrustInput, TrustReport
    from contracts.names import (
        APPROVE,
        CANCEL,
        CI_COMPLETED,
        DECISION_KEY,
        EVIDENCE,
        OVERRIDE,
        PR_CLOSED,
        REJECT,
        REQUEST_CHANGES,
        RETRY,
        SERVICE_KEY,
        SPEC_CHANGED,
        SPEC_TO_SHIP,
        STAGE_KEY,
        STATE_KEY,
        STATUS,
        TEAM_KEY,
        TIMELINE,
        TOKENS,
        TOOL_CALLS,
    )
    from contracts.preview import PreviewRequest
    from contracts.runs import CheckSummary, ForgeEvent, HumanAction, RunState, RunStatus, SpecToShipInput, StageRecord
    from contracts.workspace import (
        CheckChangeInput,
        PrepareWorkspaceInput,
        PreviewInput,
        PublishBranchInput,
        ToolCallRecord,
        WorkspaceDiff,
        WorkspaceRef,
    )
    from rules.gateway.grants import default_grant
    from rules.protected import rules_for
    from rules.report import ReportInput, render_report
    from specs.models import AutonomyLevel, Spec
    from workflows import prompts
    from workflows.agent_run import AgentRun

DEFAULT_ESTIMATE_TOKENS = 100_000
PATCH_TELL_ISSUE_NO_CODER = "tell-issue-no-coder"



class ActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    schedule_to_start_timeout: timedelta
    retry_policy: RetryPolicy


# Timeouts and retries, named after what they protect.
FORGE_CALL: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2),
                                maximum_attempts=8, non_retryable_error_types=["InvalidSpec", "InvalidPolicy"]),
}
WORKSPACE_GIT: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=5),
    "schedule_to_start_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(maximum_attempts=5, non_retryable_error_types=["WorkspaceLost"]),
}
LEDGER_CALL: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                                "retry_policy": RetryPolicy(maximum_attempts=10)}
GATE_CALL: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                              "retry_policy": RetryPolicy(maximum_attempts=5)}
PREVIEW_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=5))


class RunEnded(Exception):
    """Internal: the run reached its end early (failure, cancellation); the status says how."""


class HumanOutcome:
    def __init__(self, kind: str, action: HumanAction | None = None) -> None:
        self.kind = kind
        self.action = action


@workflow.defn(name=SPEC_TO_SHIP)
class SpecToShip:
    @workflow.init
    def __init__(self, request: SpecToShipInput) -> None:
        self._status = RunStatus(workflow_id=workflow.info().workflow_id, state=RunState.running, stage="load_spec")
        self._timeline: list[StageRecord] = []
        self._action: tuple[str, HumanAction] | None = None
        self._events: list[ForgeEvent] = []
        self._ci: dict[str, CriterionResult] = {}
        self._evidence = ""
        self._cancel: HumanAction | None = None
        self._spec_changed = False
        self._pr_closed: ForgeEvent | None = None
        self._reviews: list[ReviewResult] = []
        self._models: dict[str, str] = {}
        self._tool_calls: list[ToolCallRecord] = []
        self._started = workflow.now()

    # --- queries -------------------------------------------------------------------------------

    @workflow.query(name=STATUS)
    def status(self) -> RunStatus:
        return self._status

    @workflow.query(name=TIMELINE)
    def timeline(self) -> list[StageRecord]:
        return self._timeline

    @workflow.query(name=EVIDENCE)
    def evidence(self) -> str:
        return self._evidence

    @workflow.query(name=TOKENS)
    def tokens(self) -> int:
        return self._status.tokens

    @workflow.query(name=TOOL_CALLS)
    def tool_calls(self) -> list[ToolCallRecord]:
        """The audit record of every tool call of every agent in this run, in order."""
        return self._tool_calls

    # --- people: updates (validated) and signals of the same names ------------------------------

    def _check_waiting(self, action: HumanAction, needs_reason: bool) -> None:
        if self._status.state is not RunState.awaiting_human:
            raise ApplicationError(
                f"run {self._status.workflow_id} is not waiting for a human (state {self._status.state.value}, "
                f"stage {self._status.stage})"
            )
        if needs_reason and not action.reason.strip():
            raise ApplicationError("a reason is required")

    def _accept(self, kind: str, action: HumanAction) -> str:
        self._action = (kind, action)
        line = f"{kind} by {action.actor}" + (f": {action.reason}" if action.reason else "")
        self._status.human_actions.append(line)
        return f"{kind} recorded for {self._status.workflow_id}"

    @workflow.update(name=APPROVE)
    def approve(self, action: HumanAction) -> str:
        return self._accept(APPROVE, action)

    @approve.validator
    def _validate_approve(self, action: HumanAction) -> None:
        self._check_waiting(action, needs_reason=False)

    @workflow.update(name=REJECT)
    def reject(self, action: HumanAction) -> str:
        return self._accept(REJECT, action)

    @reject.validator
    def _validate_reject(self, action: HumanAction) -> None:
        self._check_waiting(action, needs_reason=True)

    @workflow.update(name=REQUEST_CHANGES)
    def request_changes(self, action: HumanAction) -> str:
        return self._accept(REQUEST_CHANGES, action)

    @request_changes.validator
    def _validate_request_changes(self, action: HumanAction) -> None:
        self._check_waiting(action, needs_reason=True)

    @workflow.update(name=OVERRIDE)
    def override(self, action: HumanAction) -> str:
        return self._accept(OVERRIDE, action)

    @override.validator
    def _validate_override(self, action: HumanAction) -> None:
        self._check_waiting(action, needs_reason=True)
        if action.decision is None:
            raise ApplicationError("override needs a decision: merge or reject")

    @workflow.update(name=RETRY)
    def retry(self, action: HumanAction) -> str:
        return self._accept(RETRY, action)

    @retry.validator
    def _validate_retry(self, action: HumanAction) -> None:
        self._check_waiting(action, needs_reason=False)

    @workflow.update(name=CANCEL)
    def cancel(self, action: HumanAction) -> str:
        self._signal(CANCEL, action, lambda _: None)
        return f"cancel recorded for {self._status.workflow_id}"

    @cancel.validator
    def _validate_cancel(self, action: HumanAction) -> None:
        if self._status.has_decision and self._status.state is not RunState.awaiting_human:
            raise ApplicationError(f"run already ended as {self._status.state.value}")

    def _signal(self, kind: str, action: HumanAction, validate: Any) -> None:
        try:
            validate(action)
        except ApplicationError as error:
            workflow.logger.warning("ignored %s signal from %s: %s", kind, action.actor, error.message)
            return
        if kind == CANCEL:
            self._cancel = action
            self._status.human_actions.append(f"cancel by {action.actor}: {action.reason}")
        else:
            self._accept(kind, action)

    @workflow.signal(name=APPROVE)
    def approve_signal(self, action: HumanAction) -> None:
        self._signal(APPROVE, action, self._validate_approve)

    @workflow.signal(name=REJECT)
    def reject_signal(self, action: HumanAction) -> None:
        self._signal(REJECT, action, self._validate_reject)

    @workflow.signal(name=REQUEST_CHANGES)
    def request_changes_signal(self, action: HumanAction) -> None:
        self._signal(REQUEST_CHANGES, action, self._validate_request_changes)

    @workflow.signal(name=OVERRIDE)
    def override_signal(self, action: HumanAction) -> None:
        self._signal(OVERRIDE, action, self._validate_override)

    @workflow.signal(name=RETRY)
    def retry_signal(self, action: HumanAction) -> None:
        self._signal(RETRY, action, self._validate_retry)

    @workflow.signal(name=CANCEL)
    def cancel_signal(self, action: HumanAction) -> None:
        self._signal(CANCEL, action, self._validate_cancel)

    # --- the forge tells us things ---------------------------------------------------------------

    @workflow.signal(name=PR_CLOSED)
    def pr_closed(self, event: ForgeEvent) -> None:
        self._pr_closed = event

    @workflow.signal(name=CI_COMPLETED)
    def ci_completed(self, event: ForgeEvent) -> None:
        passed = event.conclusion in {"success", "neutral", "skipped"}
        name = event.name or "ci"
        self._ci[name] = CriterionResult(
            id=f"ci:{name}", kind="ci", status=CheckStatus.passed if passed else CheckStatus.failed,
            summary=f"{name} concluded {event.conclusion} on {(event.head_sha or '')[:10]}",
            evidence=event.url or "",
        )

    @workflow.signal(name=SPEC_CHANGED)
    def spec_changed(self, event: ForgeEvent) -> None:
        self._spec_changed = True

    # --- the run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: SpecToShipInput) -> RunStatus:
        self._request = request
        self._workspace: WorkspaceRef | None = None
        self._pr: PullRequest | None = None
        self._reserved = False
        self._spec: Spec | None = None
        self._level: AutonomyLevel | None = None
        self._decision: GateDecision | None = None
        self._merge_sha: str | None = None
        self._plan: AgentPlan | None = None
        self._preview: PreviewEvidence | None = None
        self._criteria: list[CriterionResult] = []
        self._reserved_tokens = 0
        self._risk_rules = RiskRules()
        self._policy_source: str | None = None
        try:
            await self._pipeline(request)
        except RunEnded:
            pass
        except asyncio.CancelledError:
            self._end(RunState.cancelled, ["the workflow was cancelled"])
            await self._cleanup()
            raise
        await self._cleanup()
        return self._status

    async def _pipeline(self, request: SpecToShipInput) -> None:
        loaded = await self._load_spec(request)
        spec, policy = loaded.spec, loaded.policy
        # The policy of the default branch when the run started; a later reload (spec edited) keeps it.
        self._risk_rules = rules_for(policy)
        self._policy_source = loaded.policy_ref.describe() if loaded.policy_ref else None
        self._spec = spec
        level = AutonomyLevel.lowest(policy.level_for(spec.service), spec.autonomy)
        self._level = level
        plan = await self._stage("plan", workflow.execute_activity(
            "plan_agents", PlanAgentsInput(choice=request.agents, service=spec.service, kind=spec.kind.value),
            result_type=AgentPlan, **GATE_CALL, summary="pick a model per role"))
        self._plan = plan
        if plan.coder is None:
            reason = ("no coder configured: pass --agent (e.g. scripted:FILE or patch:FILE), configure a model with "
                      "the coder role in spec2ship.yaml, or set SPEC2SHIP_DEFAULT_CODER")
            # Runs started from an issue used to fail here without a word on the issue.
            if self._request.issue_number is not None and workflow.patched(PATCH_TELL_ISSUE_NO_CODER):
                await self._notify(f"spec2ship could not start: {reason}.")
            await self._fail([reason])
        await self._admit(spec)
        await self._prepare_workspace(spec)
        feedback: list[str] = []
        max_rounds = request.max_review_rounds if request.max_review_rounds is not None else policy.max_review_rounds
        while True:
            stop_reason = await self._write_and_review(spec, plan, feedback, max_rounds)
            criteria = await self._validate(spec, plan)
            decision = await self._gate(spec, level, policy, criteria, stop_reason)
            if decision.decision is Decision.merge:
                await self._merge(policy)
                return
            if decision.decision is Decision.reject:
                await self._close(f"spec2ship rejected this change: {'; '.join(decision.reasons)}")
                self._end(RunState.rejected, decision.reasons)
                return
            if decision.decision is Decision.comment_only:
                await self._notify("spec2ship (L1, assisted): the proposed change and its evidence are above; "
                                   "nothing will be merged.")
                self._end(RunState.commented, decision.reasons)
                return
            outcome = await self._await_human(policy.escalation)
            if outcome.kind in {APPROVE} or (outcome.kind == OVERRIDE and outcome.action and
                                             outcome.action.decision == "merge"):
                await self._merge(policy, by=outcome.action)
                return
            if outcome.kind in {REJECT, OVERRIDE}:
                who = outcome.action.actor if outcome.action else "a human"
                reason = outcome.action.reason if outcome.action else ""
                await self._close(f"rejected by {who}: {reason}")
                self._end(RunState.rejected, [*decision.reasons, f"rejected by {who}: {reason}"])
                return
            if outcome.kind == "expired":
                await self._notify(f"spec2ship: no decision within {policy.escalation.expire_after}; the run expired. "
                                   "The PR stays open for a person to finish.")
                self._end(RunState.expired, [*decision.reasons, f"no human decision within "
                                             f"{policy.escalation.expire_after}"])
                return
            if outcome.kind == "pr_closed":
                await self._pr_closed_elsewhere()
                return
            if outcome.kind == "cancelled":
                await self._cancelled()
                return
            # request changes, retry or a changed spec: back to the coder.
            if outcome.kind == SPEC_CHANGED:
                loaded = await self._load_spec(request)
                spec = loaded.spec
                self._spec = spec
                feedback = ["The spec was edited; re-read it and make the change match the new version."]
            elif outcome.kind == REQUEST_CHANGES and outcome.action:
                feedback = [f"{outcome.action.actor} requests changes: {outcome.action.reason}"]
            else:
                feedback = ["A person asked for another attempt."]
            self._status.state = RunState.running
            self._status.awaiting_human_since = None

    # --- stages -------------------------------------------------------------------------------------

    async def _load_spec(self, request: SpecToShipInput) -> LoadedSpec:
        try:
            loaded: LoadedSpec = await self._stage("load_spec", workflow.execute_activity(
                "load_spec", LoadSpecInput(repo=request.repo, source=request.spec), result_type=LoadedSpec,
                **FORGE_CALL, summary="read and validate the spec and the policy"))
        except ActivityError as error:
            problems = _problems(error)
            if request.issue_number is not None:
                await self._notify("spec2ship could not start: the spec is invalid.\n\n" +
                                   "\n".join(f"- `{p}`" for p in problems))
            await self._fail(problems)
        spec = loaded.spec
        self._status.spec_title = spec.title
        self._status.service = spec.service
        self._status.team = spec.team
        workflow.upsert_search_attributes([SERVICE_KEY.value_set(spec.service), TEAM_KEY.value_set(spec.team)])
        workflow.upsert_memo({"title": spec.title, "service": spec.service, "team": spec.team})
        return loaded

    async def _admit(self, spec: Spec) -> None:
        estimate = spec.budget.tokens if spec.budget and spec.budget.tokens else DEFAULT_ESTIMATE_TOKENS
        usd = spec.budget.usd if spec.budget and spec.budget.usd else 0.0
        outcome: ReserveOutcome = await self._stage("admit", workflow.execute_activity(
            "reserve_budget",
            ReserveInput(team=spec.team, run_id=self._status.workflow_id, tokens=estimate, usd=usd),
            result_type=ReserveOutcome, **LEDGER_CALL, summary=f"reserve {estimate:,} tokens for team {spec.team}"))
        if not outcome.granted:
            await self._fail([f"admission refused: {outcome.reason}"])
        self._reserved = True
        self._reserved_tokens = outcome.reservation.tokens if outcome.reservation else estimate

    async def _prepare_workspace(self, spec: Spec) -> None:
        queue: str = await workflow.execute_activity(
            "claim_workspace_queue", result_type=str, start_to_close_timeout=timedelta(seconds=30),
            summary="find a worker to hold the workspace")
        prefix = f"issue-{self._request.issue_number}-" if self._request.issue_number else ""
        branch = f"spec2ship/{prefix}{spec.slug}"
        self._workspace = await self._stage("workspace", workflow.execute_activity(
            "prepare_workspace",
            PrepareWorkspaceInput(repo=self._request.repo, branch=branch, run_key=self._status.workflow_id),
            result_type=WorkspaceRef, task_queue=queue, **WORKSPACE_GIT, summary=f"working copy on {branch}"))

    async def _write_and_review(self, spec: Spec, plan: AgentPlan, feedback: list[str], max_rounds: int) -> str | None:
        """Write, publish, open the PR and review, for at most `max_rounds` extra rounds of changes.

        Returns why the coder stopped early (budget, limits), if it did.
        """
        assert self._workspace is not None and plan.coder is not None
        for review_round in range(max_rounds + 1):
            self._status.round = review_round
            coder = await self._agent(Role.coder, plan.coder, spec, prompts.coder_task(spec, feedback), review_round)
            if coder.status is AgentStatus.failed:
                await self._abandon(f"the coder failed: {coder.reason}")
            change: WorkspaceDiff = await self._stage("diff", workflow.execute_activity(
                "diff_workspace", self._workspace, result_type=WorkspaceDiff,
                task_queue=self._workspace.task_queue, **WORKSPACE_GIT, summary="collect the change"))
            if not change.stat.files:
                reason = coder.reason or coder.final_message or "no explanation"
                await self._abandon(f"the coder produced no change ({coder.status.value}: {reason})")
            await self._publish(spec, review_round)
            review = await self._review(spec, plan, change, review_round)
            self._reviews.append(review)
            if coder.status is AgentStatus.stopped:
                return coder.reason
            if review.blocking_failures or review.verdict is not ReviewVerdict.request_changes:
                return None
            if review_round < max_rounds:
                feedback = [f"{c.path or ''}:{c.line or ''} {c.body}".strip() for c in review.comments] or [
                    "The reviewer requested changes without comments."]
        return None

    async def _publish(self, spec: Spec, review_round: int) -> None:
        assert self._workspace is not None
        head: str = await self._stage("publish", workflow.execute_activity(
            "publish_branch",
            PublishBranchInput(workspace=self._workspace, message=f"{spec.title}\n\nspec2ship round {review_round + 1}"
                               f" for {self._status.workflow_id}"),
            result_type=str, task_queue=self._workspace.task_queue, **WORKSPACE_GIT, summary="commit and push"))
        if self._level is AutonomyLevel.L1:
            return  # L1: agents only comment; no pull request is opened.
        self._pr = await self._stage("open_pr", workflow.execute_activity(
            "open_pull_request",
            OpenPullRequestInput(repo=self._request.repo, branch=self._workspace.branch, title=spec.title,
                                 body=prompts.pr_body(spec, self._status.workflow_id),
                                 issue_number=self._request.issue_number),
            result_type=PullRequest, **FORGE_CALL, summary=f"pull request for {self._workspace.branch}"))
        if self._pr.head_sha != head:
            self._pr = self._pr.model_copy(update={"head_sha": head})
        self._status.pr = self._pr

    async def _review(self, spec: Spec, plan: AgentPlan, change: WorkspaceDiff, review_round: int) -> ReviewResult:
        assert self._workspace is not None
        checks: list[CriterionResult] = await self._stage("review", workflow.execute_activity(
            "check_change", CheckChangeInput(workspace=self._workspace, constraints=spec.constraints,
                                             risk=self._risk_rules),
            result_type=list[CriterionResult], task_queue=self._workspace.task_queue, **WORKSPACE_GIT,
            summary="scope, size, secret and risk checks"))
        review = ReviewResult(round=review_round, verdict=ReviewVerdict.none, checks=checks)
        # Risk findings do not stop the review agent: the gate hands them to a person with its verdict.
        if review.blocking_failures or plan.reviewer is None:
            return review
        result = await self._agent(Role.reviewer, plan.reviewer, spec, prompts.review_task(spec, change), review_round)
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

    async def _validate(self, spec: Spec, plan: AgentPlan) -> list[CriterionResult]:
        assert self._workspace is not None
        executable = [c for c in spec.acceptance if c.kind in {"http", "run"}]
        results: list[CriterionResult] = []
        preview: PreviewEvidence | None = None
        head = self._pr.head_sha if self._pr else self._workspace.branch
        if executable:
            attempt_id = f"{self._status.round}-{workflow.info().run_id[:8]}"
            preview = await self._stage("preview", workflow.execute_activity(
                "validate_in_preview",
                PreviewInput(workspace=self._workspace, request=PreviewRequest(
                    preview_id=f"{_safe(self._status.workflow_id)}-{attempt_id}", repo_path=self._workspace.path,
                    head_sha=head, config=spec.preview, criteria=executable)),
                result_type=PreviewEvidence, task_queue=self._workspace.task_queue,
                start_to_close_timeout=timedelta(seconds=_preview_budget(spec)),
                heartbeat_timeout=timedelta(seconds=20), retry_policy=PREVIEW_RETRY,
                summary=f"preview {head[:10]} and run {len(executable)} check(s)"))
            results.extend(preview.results)
        self._preview = preview
        judges = [c for c in spec.acceptance if c.kind == "judge"]
        if judges:
            results.extend(await self._judge(spec, plan, judges, results))
        results.extend(self._ci.values())
        for criterion in spec.acceptance:
            for result in results:
                if result.id == criterion.id:
                    result.key, result.weight = criterion.key, criterion.weight
        self._status.checks = [CheckSummary(id=r.id, status=r.status) for r in results]
        return results

    async def _judge(self, spec: Spec, plan: AgentPlan, judges: list[Any],
                     evidence: list[CriterionResult]) -> list[CriterionResult]:
        if plan.validator is None:
            return [CriterionResult(id=c.id, kind="judge", status=CheckStatus.not_judged,
                                    summary="no validation agent configured") for c in judges]
        result = await self._agent(Role.validator, plan.validator, spec,
                                   prompts.judge_task(spec, judges, evidence), self._status.round)
        given = {}
        if result.final_tool:
            for item in result.final_tool.arguments.get("judgements") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    given[item["id"]] = item
        judged: list[CriterionResult] = []
        for criterion in judges:
            item = given.get(criterion.id)
            if item is None:
                judged.append(CriterionResult(id=criterion.id, kind="judge", status=CheckStatus.not_judged,
                                              summary=f"the validation agent gave no judgement ({result.reason})"))
                continue
            passed = item.get("verdict") == "pass"
            judged.append(CriterionResult(
                id=criterion.id, kind="judge", status=CheckStatus.passed if passed else CheckStatus.failed,
                summary=str(item.get("reason", ""))[:200], evidence=f"judged by {plan.validator.model}"))
        return judged

    async def _gate(self, spec: Spec, level: AutonomyLevel, policy: Policy, criteria: list[CriterionResult],
                    stop_reason: str | None) -> GateDecision:
        trust: TrustReport = await workflow.execute_activity(
            "read_trust", ReadTrustInput(service=spec.service), result_type=TrustReport, **LEDGER_CALL,
            summary=f"trust of {spec.service}")
        review = self._reviews[-1] if self._reviews else None
        decision: GateDecision = await self._stage("gate", workflow.execute_activity(
            "decide_gate",
            GateInput(level=level, criteria=criteria, review=review, trust=trust.trust, trust_bar=policy.trust_bar,
                      trust_explanation=trust.explanation, stop_reason=stop_reason, risk_owners=policy.risk_owners),
            result_type=GateDecision, **GATE_CALL, summary=f"trust gate at {level.value}"))
        self._decision = decision
        self._status.decision = decision.decision.value
        self._status.reasons = decision.reasons
        workflow.upsert_search_attributes([DECISION_KEY.value_set(decision.decision.value)])
        await self._publish_evidence(criteria)
        return decision

    async def _publish_evidence(self, criteria: list[CriterionResult] | None = None) -> None:
        assert self._spec is not None
        if criteria is not None:
            self._criteria = criteria
        self._evidence = render_report(ReportInput(
            workflow_id=self._status.workflow_id, spec_title=self._spec.title, service=self._spec.service,
            team=self._spec.team, criteria=self._criteria, preview=self._preview,
            reviews=self._reviews, decision=self._decision, plan=self._plan,
            tokens=self._status.tokens, cost_usd=self._status.cost_usd, human_actions=self._status.human_actions,
            policy_source=self._policy_source, opted_out=self._risk_rules.opted_out))
        if self._pr is None:
            return
        decision = self._decision.decision if self._decision else None
        state = self._status.state
        label, status = {
            RunState.merged: (STATUS_LABELS["merged"], CommitStatus.success),
            RunState.rejected: (STATUS_LABELS["rejected"], CommitStatus.failure),
        }.get(state, (STATUS_LABELS["awaiting_human"] if decision is Decision.escalate else STATUS_LABELS["running"],
                      CommitStatus.pending if decision is not Decision.reject else CommitStatus.failure))
        description = f"{state.value}: {decision.value if decision else 'running'}"
        await workflow.execute_activity(
            "publish_evidence",
            PublishEvidenceInput(repo=self._request.repo, pr=self._pr, markdown=self._evidence, status=status,
                                 status_description=description, label=label, issue_number=self._request.issue_number),
            **FORGE_CALL, summary="evidence report on the PR")

    async def _await_human(self, escalation: EscalationPolicy) -> HumanOutcome:
        self._action = None
        self._spec_changed = False
        self._status.state = RunState.awaiting_human
        since = workflow.now()
        self._status.awaiting_human_since = since
        self._set_stage("awaiting_human")
        await self._publish_evidence()
        # Protected paths and eroded tests go to the policy's risk owners, not the usual escalation chain.
        chosen = self._decision.escalate_to if self._decision and self._decision.escalate_to else escalation.owners
        owners = " ".join(f"@{owner}" for owner in chosen)
        how = f"`spec2ship approve|reject|request-changes {self._status.workflow_id} --reason ...`"
        await self._notify(f"spec2ship is waiting for a human decision: {how} or a `/spec2ship approve` comment. "
                           f"{owners}".strip())
        marks = sorted([(escalation.remind_after, "remind"), (escalation.escalate_after, "escalate"),
                        (escalation.expire_after, "expire")], key=lambda mark: mark[0])
        for after, mark in marks:
            remaining = since + after - workflow.now()
            if remaining.total_seconds() > 0:
                try:
                    await workflow.wait_condition(self._human_event, timeout=remaining)
                    return self._take_human_event()
                except TimeoutError:
                    pass
            elif self._human_event():
                return self._take_human_event()
            if mark == "remind":
                await self._notify(f"Reminder: this change has waited {_ago(after)} for a human decision. {owners}")
            elif mark == "escalate":
                await self._notify(f"Escalation: no decision after {_ago(after)}. {owners} please decide.".strip())
            else:
                return HumanOutcome("expired")
        return HumanOutcome("expired")

    def _human_event(self) -> bool:
        return (self._action is not None or self._cancel is not None or self._pr_closed is not None
                or self._spec_changed)

    def _take_human_event(self) -> HumanOutcome:
        if self._cancel is not None:
            return HumanOutcome("cancelled", self._cancel)
        if self._pr_closed is not None:
            return HumanOutcome("pr_closed")
        if self._action is not None:
            kind, action = self._action
            self._action = None
            return HumanOutcome(kind, action)
        self._spec_changed = False
        return HumanOutcome(SPEC_CHANGED)

    async def _merge(self, policy: Policy, by: HumanAction | None = None) -> None:
        assert self._pr is not None
        if self._pr_closed is not None:
            await self._pr_closed_elsewhere()
            return
        result: MergeResult = await self._stage("merge", workflow.execute_activity(
            "merge_pull_request", MergeInput(repo=self._request.repo, pr=self._pr,
                                             method=policy.merge_method),
            result_type=MergeResult, **FORGE_CALL, summary=f"merge PR #{self._pr.number}"))
        who = f" (approved by {by.actor})" if by else ""
        if result.outcome in {MergeOutcome.merged, MergeOutcome.already_merged}:
            self._merge_sha = result.merge_sha
            self._end(RunState.merged, [*self._status.reasons, f"merged{who} as {result.merge_sha or '?'}"])
            await self._publish_evidence()
            return
        self._end(RunState.failed, [*self._status.reasons, f"merge refused ({result.outcome.value}): {result.message}"])
        await self._publish_evidence()

    # --- endings ------------------------------------------------------------------------------------

    async def _close(self, note: str) -> None:
        if self._pr is not None or self._workspace is not None:
            await workflow.execute_activity(
                "close_change", CloseChangeInput(repo=self._request.repo, branch=self._workspace.branch
                                                 if self._workspace else "", pr=self._pr, note=note,
                                                 delete_branch=self._pr is None),
                **FORGE_CALL, summary="close the change")

    async def _abandon(self, reason: str) -> None:
        """End before a decision: nothing half-made stays (no PR: the branch goes too)."""
        await self._close(f"spec2ship abandoned this change: {reason}")
        await self._fail([reason])

    async def _pr_closed_elsewhere(self) -> None:
        event = self._pr_closed
        assert event is not None
        if event.merged:
            self._end(RunState.merged, [f"merged outside spec2ship by {event.actor or 'someone'}"])
        else:
            self._end(RunState.rejected, [f"the pull request was closed by {event.actor or 'someone'}"])

    async def _cancelled(self) -> None:
        who = self._cancel.actor if self._cancel else "someone"
        await self._close(f"cancelled by {who}")
        self._end(RunState.cancelled, [f"cancelled by {who}: {self._cancel.reason if self._cancel else ''}"])

    async def _fail(self, reasons: list[str]) -> None:
        self._end(RunState.failed, reasons)
        raise RunEnded()

    def _end(self, state: RunState, reasons: list[str]) -> None:
        self._status.state = state
        self._status.reasons = reasons
        self._status.awaiting_human_since = None
        self._set_stage("done")
        workflow.upsert_search_attributes([STATE_KEY.value_set(state.value)])

    async def _notify(self, body: str) -> None:
        if self._pr is None and self._request.issue_number is None and self._request.repo.kind is ForgeKind.github:
            return
        await workflow.execute_activity(
            "notify", NotifyInput(repo=self._request.repo, body=body, pr=self._pr,
                                  issue_number=self._request.issue_number),
            **FORGE_CALL, summary="comment")

    async def _cleanup(self) -> None:
        """Always: remove the workspace, release the unused budget, record the outcome."""
        if self._workspace is not None:
            try:
                await workflow.execute_activity(
                    "remove_workspace", self._workspace, task_queue=self._workspace.task_queue,
                    start_to_close_timeout=timedelta(minutes=2), schedule_to_close_timeout=timedelta(minutes=30),
                    retry_policy=RetryPolicy(maximum_attempts=5), summary="remove the workspace")
            except ActivityError as error:
                workflow.logger.warning("workspace not removed (a janitor will): %s", error)
        if self._spec is not None and self._reserved:
            await workflow.execute_activity(
                "release_budget", ReleaseInput(team=self._spec.team, run_id=self._status.workflow_id),
                **LEDGER_CALL, summary="release the unused reservation")
        if self._spec is not None and self._status.state is not RunState.running:
            await workflow.execute_activity("record_outcome", self._outcome(), **LEDGER_CALL,
                                            summary=f"ledger of {self._spec.service}")

    def _outcome(self) -> OutcomeRecord:
        assert self._spec is not None
        checks = self._status.checks
        return OutcomeRecord(
            workflow_id=self._status.workflow_id, service=self._spec.service, team=self._spec.team,
            spec_title=self._spec.title, kind=self._spec.kind.value, state=self._status.state,
            decision=self._decision.decision.value if self._decision else "none",
            level=self._level.value if self._level else "", reasons=self._status.reasons,
            checks_passed=sum(1 for c in checks if c.status is CheckStatus.passed),
            checks_failed=sum(1 for c in checks if c.status in {CheckStatus.failed, CheckStatus.error}),
            review_verdict=self._reviews[-1].verdict.value if self._reviews else "none",
            human_verdicts=self._status.human_actions, models=self._models, tokens=self._status.tokens,
            cost_usd=self._status.cost_usd, agent_made=not (self._request.agents.coder or "").startswith("patch:"),
            first_commit_at=self._started, started_at=self._started, finished_at=workflow.now(),
            merge_sha=self._merge_sha,
        )

    # --- helpers ------------------------------------------------------------------------------------

    async def _agent(self, role: Role, choice: ModelChoice, spec: Spec, task: str, review_round: int) -> AgentRunResult:
        assert self._workspace is not None
        self._models[role.value] = choice.model
        attribution = Attribution(team=spec.team, service=spec.service, spec=spec.title,
                                  workflow_id=self._status.workflow_id, role=role, kind=spec.kind.value)
        budget = BudgetLink(team=spec.team, run_id=self._status.workflow_id,
                            reserved_tokens=self._reserved_tokens) if self._reserved else None
        limits = RunLimits()
        if spec.budget and spec.budget.tokens:
            limits = RunLimits(max_tokens=max(spec.budget.tokens - self._status.tokens, 1))
        self._set_stage({Role.coder: "write", Role.reviewer: "review", Role.validator: "validate"}[role])
        started = workflow.now()
        try:
            result: AgentRunResult = await workflow.execute_child_workflow(
                AgentRun.run,
                AgentRunInput(role_prompt=prompts.role_prompt(role, spec), task=task, model=choice,
                              workspace=self._workspace, grant=default_grant(role, spec.constraints), limits=limits,
                              attribution=attribution, round=review_round, budget=budget,
                              tokens_before=self._status.tokens),
                id=f"{self._status.workflow_id}/{role.value}/{review_round}-{len(self._timeline)}",
                static_summary=f"{role.value} agent, round {review_round + 1}, model {choice.model}",
            )
        except ChildWorkflowError as error:
            result = AgentRunResult(status=AgentStatus.failed, reason=str(error.cause or error))
        self._tool_calls.extend(result.tool_calls)
        self._status.tokens += result.usage.total
        self._status.cost_usd = round(self._status.cost_usd + result.cost_usd, 6)
        self._timeline.append(StageRecord(stage=f"agent:{role.value}", started_at=started, ended_at=workflow.now(),
                                          result=f"{result.status.value} {result.reason}".strip()))
        return result

    async def _stage(self, name: str, work: Any) -> Any:
        self._set_stage(name)
        record = StageRecord(stage=name, started_at=workflow.now())
        self._timeline.append(record)
        try:
            result = await work
        except ActivityError as error:
            record.ended_at = workflow.now()
            record.result = f"failed: {_cause(error)}"
            raise
        record.ended_at = workflow.now()
        record.result = _describe(result)
        return result

    def _set_stage(self, stage: str) -> None:
        self._status.stage = stage
        workflow.upsert_search_attributes([STAGE_KEY.value_set(stage)])


def _problems(error: ActivityError) -> list[str]:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        details = list(cause.details) if cause.details else []
        if details and isinstance(details[0], list):
            return [str(item) for item in details[0]]
        return [cause.message]
    return [str(error)]


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or getattr(error, "cause", None)
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def _describe(result: Any) -> str:
    if isinstance(result, PullRequest):
        return f"PR #{result.number} {result.url}"
    if isinstance(result, GateDecision):
        return result.decision.value
    if isinstance(result, MergeResult):
        return result.outcome.value
    if isinstance(result, PreviewEvidence):
        passed = sum(1 for r in result.results if r.status is CheckStatus.passed)
        return f"{passed}/{len(result.results)} checks passed"
    if isinstance(result, WorkspaceDiff):
        return f"{len(result.stat.files)} files, +{result.stat.added} -{result.stat.removed}"
    if isinstance(result, str):
        return result[:60]
    return "ok"


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[-60:]


def _preview_budget(spec: Spec) -> float:
    ready = spec.preview.ready_timeout if spec.preview else 0
    return ready + sum(c.timeout for c in spec.acceptance if c.kind in {"http", "run"}) + 120


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f}h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f}m"

