"""Every activity a workflow can call, declared once: its name, its input and its output.

Workflows call these declarations (`workflow.execute_activity_method(ForgeCalls.load_spec, ...)`), so
they name activities without loading the code that implements them. Implementations subclass the
declaration and override each method with `@activity.defn`; mypy checks that the signatures agree, and
`implementations` hands a worker the bound methods to register. A new activity is declared here first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from contracts.agents import AgentPlan, ModelRequest, ModelTurn, PlanAgentsInput
from contracts.budget import (
    AdmissionInput,
    ReleaseInput,
    ReleaseOutcome,
    ReserveInput,
    ReserveOutcome,
    UsageCommitInput,
    UsageCommitted,
)
from contracts.evidence import CriterionResult, PreviewEvidence
from contracts.factory import FactoryReport, ListReadyIssuesInput, ReadyIssues, StartSpecRunsInput
from contracts.forge import (
    CloseChangeInput,
    CloseChangeResult,
    LabelIssueInput,
    LoadedSpec,
    LoadSpecInput,
    MergeInput,
    MergeResult,
    NotifyInput,
    OpenPullRequestInput,
    PublishEvidenceInput,
    PullRequest,
)
from contracts.gate import GateDecision, GateInput
from contracts.ledger import LaterOutcomeInput, OutcomeRecord, ReadTrustInput, TrustReport
from contracts.store import SweepReport, SweepStoreInput
from contracts.workspace import (
    CheckChangeInput,
    CliAgentOutcome,
    ListMcpToolsInput,
    McpToolset,
    PrepareWorkspaceInput,
    PreviewInput,
    PublishBranchInput,
    RunCliAgentInput,
    RunToolInput,
    ToolResult,
    WorkspaceDiff,
    WorkspaceRef,
)


def _declared() -> NotImplementedError:
    return NotImplementedError("a declaration: the worker registers the implementing subclass's method")


class Planning:
    """Shared CPU queue: which model takes each role of a run."""

    @activity.defn
    async def plan_agents(self, request: PlanAgentsInput) -> AgentPlan:
        raise _declared()


class ModelCalls:
    """The model's own queue (the shared queue, or a GPU queue for local models): one model turn."""

    @activity.defn
    async def call_model(self, request: ModelRequest) -> ModelTurn:
        raise _declared()


class ForgeCalls:
    """Shared CPU queue: the forge (local repository or GitHub), idempotent under retry."""

    @activity.defn
    def load_spec(self, request: LoadSpecInput) -> LoadedSpec:
        raise _declared()

    @activity.defn
    def open_pull_request(self, request: OpenPullRequestInput) -> PullRequest:
        raise _declared()

    @activity.defn
    def publish_evidence(self, request: PublishEvidenceInput) -> None:
        raise _declared()

    @activity.defn
    def merge_pull_request(self, request: MergeInput) -> MergeResult:
        raise _declared()

    @activity.defn
    def notify(self, request: NotifyInput) -> None:
        raise _declared()

    @activity.defn
    def label_issue(self, request: LabelIssueInput) -> None:
        raise _declared()

    @activity.defn
    def close_change(self, request: CloseChangeInput) -> CloseChangeResult | None:
        """Histories recorded before it returned a result hold None here."""
        raise _declared()


class GateCalls:
    """Shared CPU queue: the gate's decision lands in history, so later rule changes never alter a replay."""

    @activity.defn
    def decide_gate(self, gate: GateInput) -> GateDecision:
        raise _declared()


class LedgerCalls:
    """Shared CPU queue: the service's ledger entity (trust, outcomes)."""

    @activity.defn
    async def record_outcome(self, record: OutcomeRecord) -> None:
        raise _declared()

    @activity.defn
    async def record_later_outcome(self, later: LaterOutcomeInput) -> None:
        raise _declared()

    @activity.defn
    async def read_trust(self, request: ReadTrustInput) -> TrustReport:
        raise _declared()


class BudgetCalls:
    """Shared CPU queue: the team's budget entity (admission, usage, release)."""

    @activity.defn
    async def reserve_budget(self, request: ReserveInput) -> ReserveOutcome:
        raise _declared()

    @activity.defn
    async def extend_budget(self, request: ReserveInput) -> ReserveOutcome:
        raise _declared()

    @activity.defn
    async def request_admission(self, request: AdmissionInput) -> None:
        """Signal the budget (starting it if needed); the answer arrives at the run as a signal."""
        raise _declared()

    @activity.defn
    async def release_budget(self, request: ReleaseInput) -> ReleaseOutcome:
        raise _declared()

    @activity.defn
    async def commit_usage(self, usage: UsageCommitInput) -> UsageCommitted:
        raise _declared()


class WorkspaceCalls:
    """The queue of the worker holding the workspace (claim_workspace_queue runs on the shared queue)."""

    @activity.defn
    async def claim_workspace_queue(self) -> str:
        raise _declared()

    @activity.defn
    async def prepare_workspace(self, request: PrepareWorkspaceInput) -> WorkspaceRef:
        raise _declared()

    @activity.defn
    def run_tool(self, request: RunToolInput) -> ToolResult:
        raise _declared()

    @activity.defn
    def list_mcp_tools(self, request: ListMcpToolsInput) -> McpToolset:
        raise _declared()

    @activity.defn
    async def run_cli_agent(self, request: RunCliAgentInput) -> CliAgentOutcome:
        raise _declared()

    @activity.defn
    def diff_workspace(self, workspace: WorkspaceRef) -> WorkspaceDiff:
        raise _declared()

    @activity.defn
    def check_change(self, request: CheckChangeInput) -> list[CriterionResult]:
        raise _declared()

    @activity.defn
    def publish_branch(self, request: PublishBranchInput) -> str:
        raise _declared()

    @activity.defn
    async def validate_in_preview(self, request: PreviewInput) -> PreviewEvidence:
        raise _declared()

    @activity.defn
    def remove_workspace(self, workspace: WorkspaceRef) -> None:
        raise _declared()


class PreviewCalls:
    """Shared CPU queue: the janitor's sweep (previews themselves run in validate_in_preview)."""

    @activity.defn
    def reap_previews(self) -> list[str]:
        """Tear down previews past their TTL, found by spec2ship's labels; one line per preview."""
        raise _declared()


class FactoryCalls:
    """Shared CPU queue: the factory schedule's sweep over labelled issues."""

    @activity.defn
    def list_ready_issues(self, request: ListReadyIssuesInput) -> ReadyIssues:
        raise _declared()

    @activity.defn
    async def start_spec_runs(self, request: StartSpecRunsInput) -> FactoryReport:
        raise _declared()


class StoreCalls:
    """Shared CPU queue: the blob store's janitor (conversations and tool results of finished agent runs)."""

    @activity.defn
    async def sweep_store(self, request: SweepStoreInput) -> SweepReport:
        raise _declared()


CONTRACTS: list[type] = [Planning, ModelCalls, ForgeCalls, GateCalls, LedgerCalls, BudgetCalls, WorkspaceCalls,
                         PreviewCalls, FactoryCalls, StoreCalls]


def declared_names(contract: type) -> list[str]:
    return [name for name, value in vars(contract).items() if callable(value) and not name.startswith("_")]


def implementations(holder: object, *contracts: type) -> list[Callable[..., Any]]:
    """The bound methods of `holder` that implement the declarations it subclasses (or those named)."""
    chosen = contracts or tuple(c for c in type(holder).__mro__ if c in CONTRACTS)
    found: list[Callable[..., Any]] = []
    for contract in chosen:
        for name in declared_names(contract):
            method = getattr(holder, name)
            if getattr(type(holder), name) is getattr(contract, name):
                raise TypeError(f"{type(holder).__name__} does not implement {contract.__name__}.{name}")
            found.append(method)
    return found
