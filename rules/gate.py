"""The trust gate's decision: a pure function of policy level, evidence, review and trust.

Rules (DESIGN.md, autonomy levels): a failed deterministic check or a scope violation rejects at
every level; L1 only comments; L2 and L3 always wait for a human; L4 merges only when every criterion
passed, the review approved and the service's trust clears the bar; L5 merges when nothing failed.
A failed *judgement* (a model's opinion) escalates rather than rejects: a model may stop an
auto-merge, never throw a change away on its own. A *risk* finding (a protected path changed, tests
eroded) escalates at every level, L5 included, to the policy's risk owners.
"""

from __future__ import annotations

from contracts.evidence import CheckStatus, CriterionResult, ReviewVerdict
from contracts.gate import Decision, GateDecision, GateInput
from rules.score import score_run
from specs.models import AutonomyLevel

DETERMINISTIC = {"http", "run", "ci", "review"}


def _names(results: list[CriterionResult]) -> str:
    return ", ".join(result.id for result in results)


def decide(gate: GateInput) -> GateDecision:
    checks = list(gate.criteria) + (gate.review.checks if gate.review else [])
    if gate.score is None:
        # Keptn-style evidence score: weighted objectives, key objectives fail the run, pass/warning bars.
        evidence = score_run(checks, gate.review.verdict if gate.review else ReviewVerdict.none)
        gate = gate.model_copy(update={"score": evidence.score, "score_result": evidence.result.value})
        score_line = (f"evidence score {evidence.score:.0f}/100: {evidence.result.value} (pass at "
                      f"{evidence.thresholds.passed:.0f}, warning at {evidence.thresholds.warning:.0f})")
    else:
        score_line = f"evidence score {gate.score:.0f}/100: {gate.score_result}"
    failing = {CheckStatus.failed, CheckStatus.error}
    hard_failures = [c for c in checks if c.kind in DETERMINISTIC and c.status in failing]
    judged_failures = [c for c in checks if c.kind == "judge" and c.status is CheckStatus.failed]
    not_judged = [c for c in checks if c.status is CheckStatus.not_judged]
    passed = [c for c in checks if c.status is CheckStatus.passed]
    verdict = gate.review.verdict if gate.review else ReviewVerdict.none
    level = gate.level
    reasons: list[str] = [f"autonomy level {level.value}"]

    risky = [c for c in checks if c.kind == "risk" and c.status in failing]

    def result(decision: Decision) -> GateDecision:
        owners = gate.risk_owners if risky and decision is Decision.escalate else []
        return GateDecision(decision=decision, level=level, reasons=reasons, trust=gate.trust, score=gate.score,
                            escalate_to=owners)

    if hard_failures:
        reasons.append(f"deterministic checks failed: {_names(hard_failures)}")
        reasons.append(score_line)
        return result(Decision.reject)
    reasons.append(f"{len(passed)} check(s) passed")
    reasons.append(score_line)
    reasons.extend(f"{c.id}: {c.summary}" for c in risky)
    if gate.stop_reason:
        reasons.append(f"the coder stopped early: {gate.stop_reason}")
        return result(Decision.escalate)
    if level is AutonomyLevel.L1:
        reasons.append("L1 (assisted): agents only comment; nothing is merged")
        return result(Decision.comment_only)
    if risky:
        who = ", ".join(gate.risk_owners) or "a person"
        reasons.append(f"changes to protected paths or tests never merge on their own, at any level: {who} decides")
        return result(Decision.escalate)
    if level in {AutonomyLevel.L2, AutonomyLevel.L3}:
        reasons.append(f"{level.value} always waits for a human decision")
        return result(Decision.escalate)
    if judged_failures:
        reasons.append(f"the validation agent judged these criteria failed: {_names(judged_failures)}")
        return result(Decision.escalate)
    if verdict is ReviewVerdict.request_changes:
        reasons.append("the review agent still requests changes after the last round")
        return result(Decision.escalate)
    if level is AutonomyLevel.L5:
        if not_judged:
            reasons.append(f"not judged (no validation agent): {_names(not_judged)}")
        reasons.append("L5 (full autonomy): nothing failed, so the change merges")
        return result(Decision.merge)
    # L4: selective autonomy — every criterion passed, review approved, trust clears the bar.
    blockers: list[str] = []
    if not_judged:
        blockers.append(f"criteria not judged: {_names(not_judged)}")
    if verdict is not ReviewVerdict.approve:
        blockers.append("no review agent approved the change")
    if gate.score_result is not None and gate.score_result != "pass":
        blockers.append(f"evidence score {gate.score:.0f} is a {gate.score_result}, not a pass")
    trust = gate.trust or 0.0
    if trust < gate.trust_bar:
        blockers.append(f"service trust {trust:.2f} is below the bar {gate.trust_bar:.2f}")
    else:
        reasons.append(f"service trust {trust:.2f} clears the bar {gate.trust_bar:.2f}")
    if blockers:
        reasons.extend(blockers)
        return result(Decision.escalate)
    reasons.append("L4: every criterion passed, review approved, trust clears the bar")
    return result(Decision.merge)
