"""AgentRun: the durable agent loop, one child workflow per agent role and round.

Each model turn is an activity on the model's task queue; each tool call is an activity on the
workspace's queue. Governance (allow-list, path constraints, rate limits, loop and denial limits,
step and token limits, team budget) is enforced here, before anything executes, and again inside
the tool activity. Every tool call leaves an audit record, queryable while the run is live.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.agent_run import AgentRunInput, AgentRunResult, AgentStatus
    from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, ToolSpec, Usage
    from contracts.budget import ReserveInput, ReserveOutcome, UsageCommitInput
    from contracts.names import AGENT_RUN, TOOL_CALLS
    from contracts.tools import TOOL_SPECS
    from contracts.workspace import (
        CliAgentOutcome,
        ListMcpToolsInput,
        McpToolset,
        RunCliAgentInput,
        RunToolInput,
        ToolCallRecord,
        ToolResult,
        ToolStatus,
    )
    from rules.gateway.governor import GovernorState, admit, repeated_call
    from rules.gateway.grants import FINAL_TOOLS


PATCH_COUNT_TOOL_DENIALS = "count-tool-denials"
PATCH_OFFER_MCP_TOOLS = "offer-mcp-tools"
PATCH_CLI_AGENT = "cli-agent-coder"

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1),
    maximum_attempts=6, non_retryable_error_types=["auth", "bad_request", "config", "bad_patch"],
)
TOOL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3,
                         non_retryable_error_types=["WorkspaceLost"])


@workflow.defn(name=AGENT_RUN)
class AgentRun:
    @workflow.init
    def __init__(self, request: AgentRunInput) -> None:
        self._records: list[ToolCallRecord] = []
        self._governor = GovernorState()
        self._usage = Usage()

    @workflow.query(name=TOOL_CALLS)
    def tool_calls(self) -> list[ToolCallRecord]:
        return self._records

    @workflow.run
    async def run(self, request: AgentRunInput) -> AgentRunResult:
        if request.model.provider == "cli" and workflow.patched(PATCH_CLI_AGENT):
            return await self._run_cli_agent(request)
        messages = [Message(role="system", content=request.role_prompt), Message(role="user", content=request.task)]
        tools = [TOOL_SPECS[name] for name in request.grant.tools if name in TOOL_SPECS]
        if workflow.patched(PATCH_OFFER_MCP_TOOLS):
            toolset = await workflow.execute_activity(
                "list_mcp_tools", ListMcpToolsInput(workspace=request.workspace, role=request.attribution.role),
                result_type=McpToolset, task_queue=request.workspace.task_queue,
                start_to_close_timeout=timedelta(minutes=2), schedule_to_start_timeout=timedelta(minutes=5),
                retry_policy=TOOL_RETRY, summary=f"MCP tools granted to the {request.attribution.role}")
            if toolset.names:
                request = request.model_copy(update={"grant": request.grant.model_copy(
                    update={"mcp_tools": toolset.names})})
                tools = tools + toolset.specs
        limits = request.limits
        cost = 0.0
        models: list[str] = []
        reserved = request.budget.reserved_tokens if request.budget else None

        def finish(status: AgentStatus, reason: str = "", final: str = "", tool: ToolCall | None = None,
                   exhausted: bool = False) -> AgentRunResult:
            return AgentRunResult(
                status=status, reason=reason, final_message=final, final_tool=tool, usage=self._usage,
                cost_usd=round(cost, 6), steps=step, models=models, tool_calls=self._records,
                budget_exhausted=exhausted,
            )

        step = 0
        for step in range(1, limits.max_steps + 1):
            spent = self._usage.total
            if spent + request.limits.max_tokens_per_call > limits.max_tokens:
                return finish(AgentStatus.stopped, f"token limit: {spent:,} of {limits.max_tokens:,} tokens used")
            if reserved is not None and request.tokens_before + spent >= reserved:
                reserved = await self._extend_budget(request, reserved)
                if reserved is None:
                    return finish(AgentStatus.stopped, "budget exhausted: the team budget has no room for "
                                  "another model call", exhausted=True)
            workflow.set_current_details(f"{request.attribution.role} step {step}: calling {request.model.model}")
            try:
                turn = await self._call_model(request, messages, tools)
            except ActivityError as error:
                return finish(AgentStatus.failed, f"model call failed: {_cause(error)}")
            self._usage = self._usage + turn.usage
            cost += turn.cost_usd
            if turn.model not in models:
                models.append(turn.model)
            await self._commit_usage(request, turn, step)
            messages.append(turn.message)
            if not turn.message.tool_calls:
                return finish(AgentStatus.completed, final=turn.message.content)
            for call in turn.message.tool_calls:
                verdict = admit(self._governor, call, request.grant, workflow.now())
                if verdict.allowed and call.name in FINAL_TOOLS:
                    self._record(step, request, call, ToolStatus.ok, "final answer")
                    return finish(AgentStatus.completed, final=turn.message.content, tool=call)
                loop = repeated_call(self._governor, call, limits)
                if loop:
                    self._record(step, request, call, ToolStatus.denied, loop)
                    return finish(AgentStatus.stopped, loop)
                if not verdict.allowed:
                    self._record(step, request, call, ToolStatus.denied, verdict.reason, verdict.path)
                    messages.append(_tool_message(call, f"denied: {verdict.reason}"))
                    if self._governor.denials >= limits.max_denials:
                        denials = self._governor.denials
                        return finish(AgentStatus.stopped,
                                      f"stopped after {denials} denied tool calls (last: {verdict.reason})")
                    continue
                try:
                    result = await self._run_tool(request, call, step)
                except ActivityError as error:
                    return finish(AgentStatus.failed, f"tool {call.name} failed: {_cause(error)}")
                self._record(step, request, call, result.status, result.output.splitlines()[0][:200] if result.output
                             else "", verdict.path)
                messages.append(_tool_message(call, result.output))
                # Runs recorded before this patch did not count the tool's own refusals (a symlink onto a
                # secret, a glob that expands onto one); new runs do, so such probing also ends the run.
                if result.status is ToolStatus.denied and workflow.patched(PATCH_COUNT_TOOL_DENIALS):
                    self._governor.denials += 1
                    if self._governor.denials >= limits.max_denials:
                        return finish(AgentStatus.stopped,
                                      f"stopped after {self._governor.denials} denied tool calls (last: "
                                      f"{result.output.splitlines()[0][:200] if result.output else call.name})")
        return finish(AgentStatus.stopped, f"step limit: {limits.max_steps} steps without finishing")

    async def _run_cli_agent(self, request: AgentRunInput) -> AgentRunResult:
        """A CLI agent edits the workspace on its own in one activity; tokens are its own business."""
        workflow.set_current_details(f"{request.attribution.role}: CLI agent {request.model.model}")
        try:
            outcome = await workflow.execute_activity(
                "run_cli_agent",
                RunCliAgentInput(workspace=request.workspace, model=request.model.model,
                                 prompt=f"{request.role_prompt}\n\n{request.task}",
                                 log_name=f"{workflow.info().workflow_id}-{request.round}"),
                result_type=CliAgentOutcome, task_queue=request.workspace.task_queue,
                start_to_close_timeout=timedelta(hours=2), heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=1),  # a half-edited workspace is not idempotent
                summary=f"CLI agent {request.model.model}",
            )
        except ActivityError as error:
            return AgentRunResult(status=AgentStatus.failed, reason=f"CLI agent failed: {_cause(error)}",
                                  models=[request.model.model])
        last = outcome.log_tail.strip().splitlines()[-1:] or [""]
        if outcome.timed_out:
            return AgentRunResult(status=AgentStatus.stopped, reason=f"CLI agent timed out after "
                                  f"{outcome.duration_s:.0f}s", final_message=last[0], models=[request.model.model])
        if outcome.exit_code != 0:
            return AgentRunResult(status=AgentStatus.failed, reason=f"CLI agent exited {outcome.exit_code}: {last[0]}",
                                  models=[request.model.model])
        return AgentRunResult(status=AgentStatus.completed, final_message=last[0], models=[request.model.model],
                              steps=1)

    async def _call_model(
        self, request: AgentRunInput, messages: list[Message], tools: list[ToolSpec]
    ) -> ModelTurn:
        return await workflow.execute_activity(
            "call_model",
            ModelRequest(
                model=request.model.model, messages=messages, tools=tools,
                max_tokens=request.limits.max_tokens_per_call, round=request.round, attribution=request.attribution,
            ),
            result_type=ModelTurn,
            task_queue=request.model.task_queue,
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=MODEL_RETRY,
            summary=f"{request.attribution.role}: {request.model.model}",
        )

    async def _run_tool(self, request: AgentRunInput, call: ToolCall, step: int) -> ToolResult:
        timeout = call.arguments.get("timeout", 120) if call.name == "run_command" else 60
        if call.name.startswith("mcp__"):
            timeout = 600  # the MCP server's own timeout (at most 600 s) applies inside the activity
        seconds = min(float(timeout) if isinstance(timeout, int | float) else 120.0, 600.0)
        return await workflow.execute_activity(
            "run_tool",
            RunToolInput(workspace=request.workspace, call=call, grant=request.grant, step=step,
                         attribution=request.attribution),
            result_type=ToolResult,
            task_queue=request.workspace.task_queue,
            start_to_close_timeout=timedelta(seconds=seconds + 60),
            schedule_to_start_timeout=timedelta(minutes=5),
            retry_policy=TOOL_RETRY,
            summary=f"{call.name} {_short_args(call)}",
        )

    async def _commit_usage(self, request: AgentRunInput, turn: ModelTurn, step: int) -> None:
        if request.budget is None or turn.usage.total == 0:
            return
        await workflow.execute_activity(
            "commit_usage",
            UsageCommitInput(
                team=request.budget.team, run_id=request.budget.run_id,
                call_id=f"{workflow.info().workflow_id}/{step}", tokens=turn.usage.total, usd=turn.cost_usd,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=10),
            summary=f"commit {turn.usage.total} tokens",
        )

    async def _extend_budget(self, request: AgentRunInput, reserved: int) -> int | None:
        """Ask the team budget for one more call's worth; None when it has no room."""
        assert request.budget is not None
        step_tokens = max(request.limits.max_tokens_per_call * 4, 20_000)
        outcome: ReserveOutcome = await workflow.execute_activity(
            "extend_budget",
            ReserveInput(team=request.budget.team, run_id=request.budget.run_id, tokens=step_tokens,
                         request_id=f"{request.budget.run_id}/extend/{reserved}"),
            result_type=ReserveOutcome,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=f"extend budget by {step_tokens}",
        )
        return reserved + step_tokens if outcome.granted else None

    def _record(self, step: int, request: AgentRunInput, call: ToolCall, status: ToolStatus, reason: str,
                path: str | None = None) -> None:
        self._records.append(ToolCallRecord(
            step=step, role=request.attribution.role, tool=call.name, args_digest=call.digest(), status=status,
            reason=reason, path=path,
        ))


def _tool_message(call: ToolCall, content: str) -> Message:
    return Message(role="tool", tool_call_id=call.id, name=call.name, content=content)


def _short_args(call: ToolCall) -> str:
    for key in ("path", "command", "pattern"):
        value = call.arguments.get(key)
        if isinstance(value, str):
            return value[:60]
    return ""


def _cause(error: BaseException) -> str:
    cause = error.__cause__
    while isinstance(cause, ActivityError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)
