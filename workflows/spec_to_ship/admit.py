"""Admit: reserve the run's token budget with its team's budget entity. No budget, no run.

The run signals its request to the TeamBudget workflow (starting it if needed) and waits for the answer,
which the budget signals back: no Update is in flight, so hundreds of runs of one team can ask at once
while every decision is still made one at a time in the entity. Runs that predate this asked with an
Update through the reserve_budget activity.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import BudgetCalls
    from contracts.budget import AdmissionInput, AdmissionRequest, ReserveInput, ReserveOutcome
    from workflows.options import ADMISSION_WAIT, LEDGER_CALL
    from workflows.patches import ADMISSION_BY_SIGNAL
    from workflows.spec_to_ship.context import RunContext

DEFAULT_ESTIMATE_TOKENS = 100_000


async def admit(run: RunContext) -> None:
    spec = run.spec
    assert spec is not None
    estimate = spec.budget.tokens if spec.budget and spec.budget.tokens else DEFAULT_ESTIMATE_TOKENS
    usd = spec.budget.usd if spec.budget and spec.budget.usd else 0.0
    if workflow.patched(ADMISSION_BY_SIGNAL.id):
        outcome = await _ask_by_signal(run, spec.team, estimate, usd)
    else:
        outcome = await run.stage("admit", workflow.execute_activity_method(
            BudgetCalls.reserve_budget,
            ReserveInput(team=spec.team, run_id=run.workflow_id, tokens=estimate, usd=usd),
            **LEDGER_CALL, summary=f"reserve {estimate:,} tokens for team {spec.team}"))
    if not outcome.granted:
        raise run.fail([f"admission refused: {outcome.reason}"])
    run.reserved = True
    run.reserved_tokens = outcome.reservation.tokens if outcome.reservation else estimate


async def _ask_by_signal(run: RunContext, team: str, tokens: int, usd: float) -> ReserveOutcome:
    request = AdmissionRequest(run_id=run.workflow_id, tokens=tokens, usd=usd, reply_to=run.workflow_id)
    run.admission_asked = True
    await run.stage("admit", workflow.execute_activity_method(
        BudgetCalls.request_admission, AdmissionInput(team=team, request=request),
        **LEDGER_CALL, summary=f"ask team {team} for {tokens:,} tokens"))
    workflow.set_current_details(f"waiting for team {team}'s budget to admit {tokens:,} tokens")
    try:
        await workflow.wait_condition(lambda: run.admission is not None, timeout=ADMISSION_WAIT,
                                      timeout_summary=f"team {team}'s budget answers")
    except TimeoutError:
        raise run.fail([f"admission: team {team}'s budget did not answer within {ADMISSION_WAIT}; is a worker "
                        "polling the shared queue?"]) from None
    answer = run.admission
    assert answer is not None
    return ReserveOutcome(granted=answer.granted, reservation=answer.reservation, reason=answer.reason)
