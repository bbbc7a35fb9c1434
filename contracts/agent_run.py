"""The AgentRun child workflow's input and result, and the limits a run is held to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.agents import Attribution, Message, ModelChoice, ToolCall, Usage
from contracts.store import ConversationRef
from contracts.workspace import ToolCallRecord, ToolGrant, WorkspaceRef


class RunLimits(BaseModel):
    max_steps: int = Field(default=40, gt=0)
    max_tokens: int = Field(default=400_000, gt=0)
    max_tokens_per_call: int = Field(default=4096, gt=0)
    loop_threshold: int = Field(default=3, ge=2, description="The same call this many times stops the run.")
    max_denials: int = Field(default=8, gt=0, description="A run that keeps hitting denials is stopped.")


class AgentStatus(StrEnum):
    completed = "completed"
    stopped = "stopped"  # a governance limit ended the run; `reason` says which
    failed = "failed"  # the model or a tool failed beyond retries


class BudgetLink(BaseModel):
    """How this run reports and extends its team reservation (None: no team budget in force)."""

    team: str
    run_id: str
    reserved_tokens: int


class GovernorState(BaseModel):
    """What the gateway remembers about one run (rules/gateway/governor.py): it travels inside the AgentRun
    workflow, and across its continue-as-new."""

    digests: dict[str, int] = Field(default_factory=dict)
    denials: int = 0
    recent_calls: list[datetime] = Field(default_factory=list)


class AgentRunState(BaseModel):
    """Everything an AgentRun's loop remembers, handed to the next run of its continue-as-new chain.

    The conversation itself stays in the store; this carries its reference, the messages not yet sent
    to the model, and the run's own accounts (governor, usage, cost, audit records, budget reservation).
    """

    step: int = Field(ge=0, description="Steps already taken.")
    conversation: ConversationRef
    pending: list[Message] = Field(default_factory=list)
    governor: GovernorState = Field(default_factory=GovernorState)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    models: list[str] = Field(default_factory=list)
    records: list[ToolCallRecord] = Field(default_factory=list)
    reserved_tokens: int | None = None
    continued: int = Field(default=0, description="How many times the run continued as new so far.")


class AgentRunInput(BaseModel):
    role_prompt: str
    task: str
    model: ModelChoice
    workspace: WorkspaceRef
    grant: ToolGrant
    limits: RunLimits = Field(default_factory=RunLimits)
    attribution: Attribution
    round: int = 0
    budget: BudgetLink | None = None
    tokens_before: int = Field(default=0, description="Tokens this spec already spent in earlier agent runs.")
    carried: AgentRunState | None = Field(
        default=None, description="Set only by the run's own continue-as-new: where the previous run stopped.")


class AgentRunResult(BaseModel):
    status: AgentStatus
    reason: str = ""
    final_message: str = ""
    final_tool: ToolCall | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    steps: int = 0
    models: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    budget_exhausted: bool = False
