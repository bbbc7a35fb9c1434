"""The state of one SpecToShip run, passed explicitly to every stage, and the bookkeeping stages share:
the current stage (status and search attribute), the timeline, and how a run ends."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.agents import AgentPlan
    from contracts.budget import AdmissionAnswer
    from contracts.evidence import CheckStatus, CriterionResult, PreviewEvidence, ReviewResult
    from contracts.forge import MergeResult, PullRequest
    from contracts.gate import GateDecision, RiskRules
    from contracts.names import STAGE_KEY, STATE_KEY
    from contracts.runs import ForgeEvent, HumanAction, RunState, RunStatus, SpecToShipInput, StageRecord
    from contracts.workspace import ToolCallRecord, WorkspaceDiff, WorkspaceRef
    from specs.models import AutonomyLevel, Spec
    from workflows import metrics
    from workflows.spec_to_ship.humans import HumanKind

T = TypeVar("T")


class RunEnded(Exception):
    """The run reached its end early (failure, abandonment); the status says how."""


@dataclass
class RunContext:
    """Everything one run knows. Signals and updates write the `human`/forge fields; stages the rest."""

    request: SpecToShipInput
    status: RunStatus
    started: datetime
    timeline: list[StageRecord] = field(default_factory=list)
    # what people and the forge told the run (set by handlers, consumed by the escalation stage)
    action: tuple[HumanKind, HumanAction] | None = None
    cancel: HumanAction | None = None
    spec_changed: bool = False
    pr_closed: ForgeEvent | None = None
    ci_events: dict[str, ForgeEvent] = field(default_factory=dict)  # the latest report of each check, by name
    # what the stages found out
    spec: Spec | None = None
    level: AutonomyLevel | None = None
    plan: AgentPlan | None = None
    risk_rules: RiskRules = field(default_factory=RiskRules)
    policy_source: str | None = None
    four_eyes: bool = True  # the policy's, once loaded
    delete_branches: bool = True  # the policy's, once loaded
    approved_by: str | None = None
    reserved: bool = False
    admission_asked: bool = False
    admission: AdmissionAnswer | None = None  # the budget's answer, signalled back
    reserved_tokens: int = 0
    workspace: WorkspaceRef | None = None
    pr: PullRequest | None = None
    reviews: list[ReviewResult] = field(default_factory=list)
    preview: PreviewEvidence | None = None
    criteria: list[CriterionResult] = field(default_factory=list)
    decision: GateDecision | None = None
    merge_sha: str | None = None
    evidence: str = ""
    models: dict[str, str] = field(default_factory=dict)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)

    @property
    def workflow_id(self) -> str:
        return self.status.workflow_id

    def set_stage(self, stage: str) -> None:
        self.status.stage = stage
        workflow.upsert_search_attributes([STAGE_KEY.value_set(stage)])
        workflow.set_current_details(f"stage: {stage}")

    async def stage(self, name: str, work: Awaitable[T]) -> T:
        """Run one stage's activity with a timeline record of when it ran and what it gave."""
        self.set_stage(name)
        record = StageRecord(stage=name, started_at=workflow.now())
        self.timeline.append(record)
        try:
            result = await work
        except ActivityError as error:
            record.ended_at = workflow.now()
            record.result = f"failed: {cause_of(error)}"
            raise
        record.ended_at = workflow.now()
        record.result = describe(result)
        metrics.stage_took(name, record.ended_at - record.started_at)
        return result

    def end(self, state: RunState, reasons: list[str]) -> None:
        self.status.state = state
        self.status.reasons = reasons
        self.status.awaiting_human_since = None
        self.set_stage("done")
        workflow.upsert_search_attributes([STATE_KEY.value_set(state.value)])
        metrics.run_ended(state.value, self.status.decision or "none", self.status.service, self.status.team)
        workflow.set_current_details(f"{state.value}: " + "; ".join(reasons)[:500])

    def update_pr(self, pr: PullRequest | None) -> None:
        """The PR as the forge last reported it (merged, closed); results from older histories carry none."""
        if pr is not None:
            self.pr = pr
            self.status.pr = pr

    def fail(self, reasons: list[str]) -> RunEnded:
        """End as failed; the caller raises what this returns, so type checkers see the stage stop."""
        self.end(RunState.failed, reasons)
        return RunEnded()


def cause_of(error: BaseException) -> str:
    cause = error.__cause__ or getattr(error, "cause", None)
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def describe(result: Any) -> str:
    """One line for the timeline."""
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
