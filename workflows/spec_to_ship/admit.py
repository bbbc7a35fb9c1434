"""Admit: reserve the run's token budget with its team's budget entity. No budget, no run."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import BudgetCalls
    from contracts.budget import ReserveInput
    from workflows.options import LEDGER_CALL
    from workflows.spec_to_ship.context import RunContext

DEFAULT_ESTIMATE_TOKENS = 100_000


async def admit(run: RunContext) -> None:
    spec = run.spec
    assert spec is not None
    estimate = spec.budget.tokens if spec.budget and spec.budget.tokens else DEFAULT_ESTIMATE_TOKENS
    usd = spec.budget.usd if spec.budget and spec.budget.usd else 0.0
    outcome = await run.stage("admit", workflow.execute_activity_method(
        BudgetCalls.reserve_budget,
        ReserveInput(team=spec.team, run_id=run.workflow_id, tokens=estimate, usd=usd),
        **LEDGER_CALL, summary=f"reserve {estimate:,} tokens for team {spec.team}"))
    if not outcome.granted:
        raise run.fail([f"admission refused: {outcome.reason}"])
    run.reserved = True
    run.reserved_tokens = outcome.reservation.tokens if outcome.reservation else estimate
