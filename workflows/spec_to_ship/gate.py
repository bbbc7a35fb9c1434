"""Gate: the service's trust from its ledger, then the trust gate's decision from the evidence."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import GateCalls, LedgerCalls
    from contracts.evidence import CriterionResult
    from contracts.gate import GateDecision, GateInput, Policy
    from contracts.ledger import ReadTrustInput
    from contracts.names import DECISION_KEY
    from specs.models import AutonomyLevel, Spec
    from workflows.options import GATE_CALL, LEDGER_CALL
    from workflows.spec_to_ship.context import RunContext
    from workflows.spec_to_ship.report import publish_evidence


async def decide(run: RunContext, spec: Spec, level: AutonomyLevel, policy: Policy, criteria: list[CriterionResult],
                 stop_reason: str | None) -> GateDecision:
    trust = await workflow.execute_activity_method(
        LedgerCalls.read_trust, ReadTrustInput(service=spec.service), **LEDGER_CALL,
        summary=f"trust of {spec.service}")
    review = run.reviews[-1] if run.reviews else None
    decision = await run.stage("gate", workflow.execute_activity_method(
        GateCalls.decide_gate,
        GateInput(level=level, criteria=criteria, review=review, trust=trust.trust, trust_bar=policy.trust_bar,
                  trust_explanation=trust.explanation, stop_reason=stop_reason, risk_owners=policy.risk_owners),
        **GATE_CALL, summary=f"trust gate at {level.value}"))
    run.decision = decision
    run.status.decision = decision.decision.value
    run.status.reasons = decision.reasons
    workflow.upsert_search_attributes([DECISION_KEY.value_set(decision.decision.value)])
    await publish_evidence(run, criteria)
    return decision
