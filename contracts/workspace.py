"""Workspaces and tool calls at the boundary, and the workspace activities' inputs and outputs."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.agents import Attribution, Role, ToolCall, ToolSpec
from contracts.forge import RepoRef
from contracts.gate import RiskRules
from contracts.preview import PreviewRequest
from contracts.store import BlobRef
from specs.models import Constraints


class WorkspaceRef(BaseModel):
    """A working copy held by one worker; its activities run on `task_queue`."""

    path: str
    task_queue: str
    branch: str
    base_sha: str
    repo: RepoRef


class ToolStatus(StrEnum):
    ok = "ok"
    error = "error"  # the tool ran and failed (bad patch, non-zero exit): the agent can react
    denied = "denied"  # governance refused it: nothing was executed


class ToolResult(BaseModel):
    call_id: str
    tool: str
    status: ToolStatus
    output: str = Field(description="What the model sees: capped and redacted; only its first line when "
                        "`output_ref` holds it.")
    output_ref: BlobRef | None = Field(default=None, description="The whole output, when it went to the store.")
    truncated: bool = False
    duration_s: float = 0.0
    reverted: list[str] = Field(
        default_factory=list, description="Paths the tool changed that it may not change, put back afterwards."
    )


class ToolCallRecord(BaseModel):
    """The audit record of one tool call (who, what, digest of arguments, outcome)."""

    step: int
    role: Role
    tool: str
    args_digest: str
    status: ToolStatus
    reason: str = ""
    path: str | None = None


class ToolGrant(BaseModel):
    """What one agent role may do in the workspace."""

    role: Role
    tools: list[str]
    constraints: Constraints = Field(default_factory=Constraints)
    command_allow: list[str] = Field(
        default_factory=list, description="Command prefixes allowed; empty: any not denied."
    )
    command_deny: list[str] = Field(default_factory=list)
    max_calls_per_minute: int = 120
    mcp_tools: list[str] = Field(
        default_factory=list, description="MCP tools this role may call, as `mcp__<server>__<tool>`."
    )
    max_command_seconds: int = Field(
        default=600, gt=0, description="Upper bound on a run_command timeout, whatever the agent asks for."
    )


class RunToolInput(BaseModel):
    workspace: WorkspaceRef
    call: ToolCall
    grant: ToolGrant
    step: int
    attribution: Attribution | None = Field(
        default=None, description="Who the call is spent for, for its telemetry span; None: the role and run only."
    )
    output_scope: str | None = Field(
        default=None, description="Store an output larger than a line or two under this scope and answer with a "
        "reference; None: the output comes back inline, as before.")


class DiffStat(BaseModel):
    files: list[str]
    added: int
    removed: int

    @property
    def changed_lines(self) -> int:
        return self.added + self.removed


class PrepareWorkspaceInput(BaseModel):
    repo: RepoRef
    branch: str
    run_key: str = Field(description="Stable per run: a retried or resumed prepare finds the same folder.")


class WorkspaceDiff(BaseModel):
    diff: str = Field(description="The unified diff against the base, capped for prompts.")
    truncated: bool = False
    stat: DiffStat


class CheckChangeInput(BaseModel):
    workspace: WorkspaceRef
    constraints: Constraints
    risk: RiskRules | None = Field(default=None, description="From the base branch's policy; None: the defaults.")


class PublishBranchInput(BaseModel):
    workspace: WorkspaceRef
    message: str


class ListMcpToolsInput(BaseModel):
    workspace: WorkspaceRef
    role: Role


class McpToolset(BaseModel):
    """The MCP tools this worker's configuration grants a role, and how the model sees them."""

    names: list[str] = Field(default_factory=list)
    specs: list[ToolSpec] = Field(default_factory=list)


class RunCliAgentInput(BaseModel):
    workspace: WorkspaceRef
    model: str = Field(description="A registry entry with provider `cli`.")
    prompt: str
    log_name: str


class CliAgentOutcome(BaseModel):
    """What the CLI agent did; its change is read afterwards by diff_workspace like any coder's."""

    exit_code: int
    timed_out: bool = False
    log_tail: str = ""
    duration_s: float = 0.0


class PreviewInput(BaseModel):
    workspace: WorkspaceRef
    request: PreviewRequest
