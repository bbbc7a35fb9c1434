"""AgentRun: the durable agent loop, one child workflow per agent role and round.

Each model turn is an activity on the model's task queue; each tool call is an activity on the
workspace's queue. Governance (allow-list, path constraints, rate limits, loop and denial limits,
step and token limits, team budget) is enforced here, before anything executes, and again inside
the tool activity. Every tool call leaves an audit record, queryable while the run is live.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import BudgetCalls, ModelCalls, WorkspaceCalls
    from contracts.agent_run import AgentRunInput, AgentRunResult, AgentRunState, AgentStatus, GovernorState
    from contracts.agents import Message, ModelRequest, ModelTurn, ToolCall, ToolSpec, Usage
    from contracts.budget import ReserveInput, ReserveOutcome, UsageCommitInput
    from contracts.names import AGENT_RUN, TOOL_CALLS
    from contracts.store import BlobRef, ConversationRef
    from contracts.tools import TOOL_SPECS
    from contracts.workspace import (
        ListMcpToolsInput,
        RunCliAgentInput,
        RunToolInput,
        ToolCallRecord,
        ToolResult,
        ToolStatus,
    )
    from rules.gateway.governor import admit, repeated_call
    from rules.gateway.grants import FINAL_TOOLS
    from workflows.options import (
        AGENT_RUN_MAX_EVENTS,
        AGENT_RUN_MAX_HISTORY_BYTES,
        CLI_AGENT,
        COMMIT_USAGE,
        EXTEND_BUDGET,
        LIST_MCP_TOOLS,
        MODEL_CALL,
        TOOL_RETRY,
        TOOL_SCHEDULE_TO_START,
    )
    from workflows.patches import CLI_AGENT_CODER, CONVERSATION_IN_STORE, COUNT_TOOL_DENIALS, OFFER_MCP_TOOLS


@workflow.defn(name=AGENT_RUN)
class AgentRun:
    @workflow.init
    def __init__(self, request: AgentRunInput) -> None:
        carried = request.carried
        self._records: list[ToolCallRecord] = list(carried.records) if carried else []
        self._governor = carried.governor if carried else GovernorState()
        self._usage = carried.usage if carried else Usage()

    @workflow.query(name=TOOL_CALLS)
    def tool_calls(self) -> list[ToolCallRecord]:
        return self._records

    @workflow.run
    async def run(self, request: AgentRunInput) -> AgentRunResult:
        if request.model.provider == "cli" and workflow.patched(CLI_AGENT_CODER.id):
            return await self._run_cli_agent(request)
        carried = request.carried
        if carried is not None:  # only a run on a stored conversation continues as new
            conversation: _Conversation = _Stored(carried.conversation, list(carried.pending), [])
            return await self._loop(request, conversation, carried)
        messages = [Message(role="system", content=request.role_prompt), Message(role="user", content=request.task)]
        # Runs recorded before this patch sent the whole conversation with every model call; new runs keep it
        # in the blob store and send references, and continue as new before their history grows large.
        stored = workflow.patched(CONVERSATION_IN_STORE.id)
        tools = [TOOL_SPECS[name] for name in request.grant.tools if name in TOOL_SPECS]
        if workflow.patched(OFFER_MCP_TOOLS.id):
            toolset = await workflow.execute_activity_method(
                WorkspaceCalls.list_mcp_tools,
                ListMcpToolsInput(workspace=request.workspace, role=request.attribution.role),
                task_queue=request.workspace.task_queue, **LIST_MCP_TOOLS,
                summary=f"MCP tools granted to the {request.attribution.role}")
            if toolset.names:
                request = request.model_copy(update={"grant": request.grant.model_copy(
                    update={"mcp_tools": toolset.names})})
                tools = tools + toolset.specs
        if stored:
            conversation = _Stored(ConversationRef(scope=workflow.info().workflow_id), messages, tools)
        else:
            conversation = _Inline(messages, tools)
        return await self._loop(request, conversation, None)

    async def _loop(self, request: AgentRunInput, conversation: _Conversation,
                    carried: AgentRunState | None) -> AgentRunResult:
        """Model turn, then each tool call it asks for (governed), until an answer, a limit, or a failure."""
        limits = request.limits
        cost = carried.cost_usd if carried else 0.0
        models: list[str] = list(carried.models) if carried else []
        reserved = carried.reserved_tokens if carried else (request.budget.reserved_tokens if request.budget else None)
        first = carried.step + 1 if carried else 1

        def finish(status: AgentStatus, reason: str = "", final: str = "", tool: ToolCall | None = None,
                   exhausted: bool = False) -> AgentRunResult:
            return AgentRunResult(
                status=status, reason=reason, final_message=final, final_tool=tool, usage=self._usage,
                cost_usd=round(cost, 6), steps=step, models=models, tool_calls=self._records,
                budget_exhausted=exhausted,
            )

        step = first - 1
        for step in range(first, limits.max_steps + 1):
            if isinstance(conversation, _Stored) and step > first and _history_is_long():
                workflow.continue_as_new(request.model_copy(update={"carried": AgentRunState(
                    step=step - 1, conversation=conversation.ref, pending=conversation.pending,
                    governor=self._governor, usage=self._usage, cost_usd=cost, models=models, records=self._records,
                    reserved_tokens=reserved, continued=carried.continued + 1 if carried else 1)}))
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
                turn = await self._call_model(request, conversation)
            except ActivityError as error:
                return finish(AgentStatus.failed, f"model call failed: {_cause(error)}")
            self._usage = self._usage + turn.usage
            cost += turn.cost_usd
            if turn.model not in models:
                models.append(turn.model)
            await self._commit_usage(request, turn, step)
            problem = conversation.answered(turn)
            if problem:
                return finish(AgentStatus.failed, problem)
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
                    conversation.tool_said(_tool_message(call, f"denied: {verdict.reason}"))
                    if self._governor.denials >= limits.max_denials:
                        denials = self._governor.denials
                        return finish(AgentStatus.stopped,
                                      f"stopped after {denials} denied tool calls (last: {verdict.reason})")
                    continue
                try:
                    result = await self._run_tool(request, call, step, conversation.output_scope)
                except ActivityError as error:
                    return finish(AgentStatus.failed, f"tool {call.name} failed: {_cause(error)}")
                self._record(step, request, call, result.status, result.output.splitlines()[0][:200] if result.output
                             else "", verdict.path)
                conversation.tool_said(_tool_message(call, result.output, result.output_ref))
                # Runs recorded before this patch did not count the tool's own refusals (a symlink onto a
                # secret, a glob that expands onto one); new runs do, so such probing also ends the run.
                if result.status is ToolStatus.denied and workflow.patched(COUNT_TOOL_DENIALS.id):
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
            outcome = await workflow.execute_activity_method(
                WorkspaceCalls.run_cli_agent,
                RunCliAgentInput(workspace=request.workspace, model=request.model.model,
                                 prompt=f"{request.role_prompt}\n\n{request.task}",
                                 log_name=f"{workflow.info().workflow_id}-{request.round}"),
                task_queue=request.workspace.task_queue, **CLI_AGENT, summary=f"CLI agent {request.model.model}",
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

    async def _call_model(self, request: AgentRunInput, conversation: _Conversation) -> ModelTurn:
        return await workflow.execute_activity_method(
            ModelCalls.call_model,
            conversation.request(ModelRequest(
                model=request.model.model, messages=[], max_tokens=request.limits.max_tokens_per_call,
                round=request.round, attribution=request.attribution,
            )),
            task_queue=request.model.task_queue, **MODEL_CALL,
            summary=f"{request.attribution.role}: {request.model.model}",
        )

    async def _run_tool(self, request: AgentRunInput, call: ToolCall, step: int, output_scope: str | None
                        ) -> ToolResult:
        timeout = call.arguments.get("timeout", 120) if call.name == "run_command" else 60
        if call.name.startswith("mcp__"):
            timeout = 600  # the MCP server's own timeout (at most 600 s) applies inside the activity
        seconds = min(float(timeout) if isinstance(timeout, int | float) else 120.0, 600.0)
        return await workflow.execute_activity_method(
            WorkspaceCalls.run_tool,
            RunToolInput(workspace=request.workspace, call=call, grant=request.grant, step=step,
                         attribution=request.attribution, output_scope=output_scope),
            task_queue=request.workspace.task_queue,
            start_to_close_timeout=timedelta(seconds=seconds + 60),
            schedule_to_start_timeout=TOOL_SCHEDULE_TO_START,
            retry_policy=TOOL_RETRY,
            summary=f"{call.name} {_short_args(call)}",
        )

    async def _commit_usage(self, request: AgentRunInput, turn: ModelTurn, step: int) -> None:
        if request.budget is None or turn.usage.total == 0:
            return
        await workflow.execute_activity_method(
            BudgetCalls.commit_usage,
            UsageCommitInput(
                team=request.budget.team, run_id=request.budget.run_id,
                call_id=f"{workflow.info().workflow_id}/{step}", tokens=turn.usage.total, usd=turn.cost_usd,
            ),
            **COMMIT_USAGE, summary=f"commit {turn.usage.total} tokens",
        )

    async def _extend_budget(self, request: AgentRunInput, reserved: int) -> int | None:
        """Ask the team budget for one more call's worth; None when it has no room."""
        assert request.budget is not None
        step_tokens = max(request.limits.max_tokens_per_call * 4, 20_000)
        outcome: ReserveOutcome = await workflow.execute_activity_method(
            BudgetCalls.extend_budget,
            ReserveInput(team=request.budget.team, run_id=request.budget.run_id, tokens=step_tokens,
                         request_id=f"{request.budget.run_id}/extend/{reserved}"),
            **EXTEND_BUDGET, summary=f"extend budget by {step_tokens}",
        )
        return reserved + step_tokens if outcome.granted else None

    def _record(self, step: int, request: AgentRunInput, call: ToolCall, status: ToolStatus, reason: str,
                path: str | None = None) -> None:
        self._records.append(ToolCallRecord(
            step=step, role=request.attribution.role, tool=call.name, args_digest=call.digest(), status=status,
            reason=reason, path=path,
        ))


class _Conversation(Protocol):
    """How the loop's conversation reaches the model: whole in every request, or in the store by reference."""

    @property
    def output_scope(self) -> str | None: ...

    def request(self, base: ModelRequest) -> ModelRequest: ...

    def answered(self, turn: ModelTurn) -> str | None:
        """Take the model's turn in; a reason to fail the run when it cannot be."""
        ...

    def tool_said(self, message: Message) -> None: ...


class _Inline:
    """Before the store (histories recorded before `conversation-in-store`): every call carries everything."""

    output_scope = None

    def __init__(self, messages: list[Message], tools: list[ToolSpec]) -> None:
        self.messages, self.tools = messages, tools

    def request(self, base: ModelRequest) -> ModelRequest:
        return base.model_copy(update={"messages": self.messages, "tools": self.tools})

    def answered(self, turn: ModelTurn) -> str | None:
        self.messages.append(turn.message)
        return None

    def tool_said(self, message: Message) -> None:
        self.messages.append(message)


class _Stored:
    """The conversation lives in the blob store: a call carries its reference, the messages added since the
    last call (tool results as references) and, until they are stored, the tool specs."""

    def __init__(self, ref: ConversationRef, pending: list[Message], tools: list[ToolSpec]) -> None:
        self.ref, self.pending, self.tools = ref, pending, tools

    @property
    def output_scope(self) -> str | None:
        return self.ref.scope

    def request(self, base: ModelRequest) -> ModelRequest:
        return base.model_copy(update={"messages": self.pending, "tools": self.tools if self.ref.manifest is None
                                       else [], "conversation": self.ref})

    def answered(self, turn: ModelTurn) -> str | None:
        if turn.conversation is None:
            return (f"the worker that ran call_model for {turn.model} does not keep conversations in the blob store: "
                    "upgrade every worker that polls the model's task queue")
        self.ref, self.pending = turn.conversation, []
        return None

    def tool_said(self, message: Message) -> None:
        self.pending.append(message)


def _history_is_long() -> bool:
    """Continue as new when the server suggests it or the run's own history passes this workflow's bounds."""
    info = workflow.info()
    return (info.is_continue_as_new_suggested() or info.get_current_history_length() >= AGENT_RUN_MAX_EVENTS
            or info.get_current_history_size() >= AGENT_RUN_MAX_HISTORY_BYTES)


def _tool_message(call: ToolCall, content: str, content_ref: BlobRef | None = None) -> Message:
    return Message(role="tool", tool_call_id=call.id, name=call.name, content=content, content_ref=content_ref)


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
