"""Running one agent (coder, reviewer, validator) as an AgentRun child, and accounting for it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from contracts.agent_run import AgentRunInput, AgentRunResult, AgentStatus, BudgetLink, RunLimits
    from contracts.agents import Attribution, ModelChoice, Role
    from contracts.runs import StageRecord
    from rules.gateway.grants import default_grant
    from workflows import prompts
    from workflows.agent_run import AgentRun
    from workflows.spec_to_ship.context import RunContext

STAGE_OF = {Role.coder: "write", Role.reviewer: "review", Role.validator: "validate"}


async def run_agent(run: RunContext, role: Role, choice: ModelChoice, task: str, review_round: int) -> AgentRunResult:
    """One agent run; its tokens, cost and tool calls are added to the run's. A failed child is a failed result."""
    spec, workspace = run.spec, run.workspace
    assert spec is not None and workspace is not None
    run.models[role.value] = choice.model
    attribution = Attribution(team=spec.team, service=spec.service, spec=spec.title, workflow_id=run.workflow_id,
                              role=role, kind=spec.kind.value)
    budget = BudgetLink(team=spec.team, run_id=run.workflow_id,
                        reserved_tokens=run.reserved_tokens) if run.reserved else None
    limits = RunLimits()
    if spec.budget and spec.budget.tokens:
        limits = RunLimits(max_tokens=max(spec.budget.tokens - run.status.tokens, 1))
    run.set_stage(STAGE_OF[role])
    started = workflow.now()
    try:
        result: AgentRunResult = await workflow.execute_child_workflow(
            AgentRun.run,
            AgentRunInput(role_prompt=prompts.role_prompt(role, spec), task=task, model=choice,
                          workspace=workspace, grant=default_grant(role, spec.constraints), limits=limits,
                          attribution=attribution, round=review_round, budget=budget,
                          tokens_before=run.status.tokens),
            id=f"{run.workflow_id}/{role.value}/{review_round}-{len(run.timeline)}",
            static_summary=f"{role.value} agent, round {review_round + 1}, model {choice.model}",
        )
    except ChildWorkflowError as error:
        result = AgentRunResult(status=AgentStatus.failed, reason=str(error.cause or error))
    run.tool_calls.extend(result.tool_calls)
    run.status.tokens += result.usage.total
    run.status.cost_usd = round(run.status.cost_usd + result.cost_usd, 6)
    run.timeline.append(StageRecord(stage=f"agent:{role.value}", started_at=started, ended_at=workflow.now(),
                                    result=f"{result.status.value} {result.reason}".strip()))
    return result
