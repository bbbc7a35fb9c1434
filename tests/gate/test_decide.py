"""Every decision path of the trust gate, as a pure function (the workflow calls it in an activity)."""

from __future__ import annotations

import pytest

from contracts.evidence import CheckStatus, CriterionResult, ReviewResult, ReviewVerdict
from contracts.gate import Decision, GateInput
from rules.gate import decide
from specs.models import AutonomyLevel


def check(id_: str, kind: str = "run", status: CheckStatus = CheckStatus.passed) -> CriterionResult:
    return CriterionResult(id=id_, kind=kind, status=status, summary=f"{id_} {status.value}")  # type: ignore[arg-type]


def review(verdict: ReviewVerdict = ReviewVerdict.approve, *failed: str) -> ReviewResult:
    checks = [check(name, "review", CheckStatus.failed if name in failed else CheckStatus.passed)
              for name in ("scope", "max-changed-lines", "secret-scan")]
    return ReviewResult(round=0, verdict=verdict, checks=checks)


GOOD = [check("http-ok", "http"), check("tests"), check("fallback", "judge")]


def gate(level: str, criteria: list[CriterionResult] | None = None, rev: ReviewResult | None = None,
         trust: float = 0.9, **extra: object) -> GateInput:
    return GateInput(level=AutonomyLevel(level), criteria=GOOD if criteria is None else criteria,
                     review=review() if rev is None else rev, trust=trust, trust_bar=0.8, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["L1", "L2", "L3", "L4", "L5"])
def test_a_failed_deterministic_check_rejects_at_every_level(level: str) -> None:
    failing = [check("http-ok", "http"), check("tests", status=CheckStatus.failed)]
    decision = decide(gate(level, failing))
    assert decision.decision is Decision.reject
    assert "deterministic checks failed: tests" in decision.reasons


@pytest.mark.parametrize("level", ["L1", "L4", "L5"])
def test_a_scope_violation_rejects(level: str) -> None:
    decision = decide(gate(level, rev=review(ReviewVerdict.approve, "scope")))
    assert decision.decision is Decision.reject and "deterministic checks failed: scope" in decision.reasons


def test_l1_only_comments() -> None:
    assert decide(gate("L1")).decision is Decision.comment_only


@pytest.mark.parametrize("level", ["L2", "L3"])
def test_l2_and_l3_always_wait_for_a_human(level: str) -> None:
    decision = decide(gate(level, trust=1.0))
    assert decision.decision is Decision.escalate
    assert f"{level} always waits for a human decision" in decision.reasons


def test_l4_merges_when_everything_passed_and_trust_clears_the_bar() -> None:
    decision = decide(gate("L4", trust=0.85))
    assert decision.decision is Decision.merge
    assert "service trust 0.85 clears the bar 0.80" in decision.reasons
    assert decision.score == 100.0 and any(r.startswith("evidence score 100/100: pass") for r in decision.reasons)


@pytest.mark.parametrize(("change", "reason"), [
    ({"trust": 0.5}, "service trust 0.50 is below the bar 0.80"),
    ({"trust": 0.0}, "service trust 0.00 is below the bar 0.80"),
    ({"rev": review(ReviewVerdict.none)}, "no review agent approved the change"),
    ({"criteria": [check("http-ok", "http"), check("fallback", "judge", CheckStatus.not_judged)]},
     "criteria not judged: fallback"),
])
def test_l4_escalates_when_anything_is_missing(change: dict[str, object], reason: str) -> None:
    decision = decide(gate("L4", **change))  # type: ignore[arg-type]
    assert decision.decision is Decision.escalate and reason in decision.reasons


def test_l4_escalates_when_the_evidence_score_is_not_a_pass() -> None:
    weighted = [check("http-ok", "http"), check("a", "judge"), check("b", "judge", CheckStatus.not_judged)]
    decision = decide(gate("L4", weighted, score=80.0, score_result="warning"))
    assert decision.decision is Decision.escalate
    assert "evidence score 80 is a warning, not a pass" in decision.reasons


def test_l5_merges_when_nothing_failed_even_unjudged() -> None:
    criteria = [check("http-ok", "http"), check("fallback", "judge", CheckStatus.not_judged)]
    decision = decide(gate("L5", criteria, rev=review(ReviewVerdict.none), trust=0.0))
    assert decision.decision is Decision.merge
    assert "not judged (no validation agent): fallback" in decision.reasons


@pytest.mark.parametrize("level", ["L4", "L5"])
def test_a_failed_judgement_or_open_review_escalates_never_rejects(level: str) -> None:
    judged = [check("http-ok", "http"), check("fallback", "judge", CheckStatus.failed)]
    assert decide(gate(level, judged)).decision is Decision.escalate
    assert decide(gate(level, rev=review(ReviewVerdict.request_changes))).decision is Decision.escalate


def test_a_coder_that_stopped_early_escalates_with_the_reason() -> None:
    decision = decide(gate("L5", stop_reason="budget exhausted"))
    assert decision.decision is Decision.escalate
    assert "the coder stopped early: budget exhausted" in decision.reasons


def _risky(id_: str = "test-erosion") -> ReviewResult:
    rev = review()
    rev.checks.append(CriterionResult(id=id_, kind="risk", status=CheckStatus.failed,
                                      summary="1 test-erosion finding(s): a person must approve"))
    return rev


@pytest.mark.parametrize("level", ["L2", "L3", "L4", "L5"])
@pytest.mark.parametrize("risk", ["protected-paths", "test-erosion"])
def test_a_risk_finding_escalates_to_the_risk_owners_at_every_level(level: str, risk: str) -> None:
    decision = decide(gate(level, rev=_risky(risk), risk_owners=["platform-security"]))
    assert decision.decision is Decision.escalate
    assert decision.escalate_to == ["platform-security"]
    assert any(r.startswith(f"{risk}: ") for r in decision.reasons)
    assert any("never merge on their own" in r for r in decision.reasons)


def test_a_risk_finding_is_a_failed_key_objective_of_the_score() -> None:
    decision = decide(gate("L5", rev=_risky()))
    assert any("evidence score" in r and ": fail" in r for r in decision.reasons)


def test_a_risk_finding_never_rejects_and_l1_still_only_comments() -> None:
    assert decide(gate("L1", rev=_risky())).decision is Decision.comment_only
    failing = [check("tests", status=CheckStatus.failed)]
    assert decide(gate("L5", failing, rev=_risky())).decision is Decision.reject


def test_a_passed_risk_check_does_not_escalate() -> None:
    rev = review()
    rev.checks.append(CriterionResult(id="protected-paths", kind="risk", status=CheckStatus.passed, summary="none"))
    decision = decide(gate("L5", rev=rev, risk_owners=["sec"]))
    assert decision.decision is Decision.merge and decision.escalate_to == []
