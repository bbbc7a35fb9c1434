"""The Keptn-style evidence score, against hand-computed expectations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.evidence import CheckStatus, CriterionResult, ReviewVerdict
from rules.score import (
    REVIEW_OBJECTIVE,
    Objective,
    ObjectiveStatus,
    ScoreResult,
    Thresholds,
    evaluate,
    objectives_from,
    score_run,
)


def check(id: str, status: CheckStatus, weight: float = 1.0, key: bool = False) -> CriterionResult:
    return CriterionResult(id=id, kind="http", status=status, summary=f"{id}: {status.value}", weight=weight, key=key)


def objective(id: str, status: ObjectiveStatus, weight: float = 1.0, key: bool = False) -> Objective:
    return Objective(id=id, kind="run", status=status, weight=weight, key=key)


def test_everything_passing_scores_100_and_passes() -> None:
    result = score_run([check("a", CheckStatus.passed), check("b", CheckStatus.passed)], ReviewVerdict.approve)
    assert result.score == 100.0
    assert result.result is ScoreResult.passed
    assert [o.id for o in result.objectives] == ["a", "b", REVIEW_OBJECTIVE]


def test_one_failed_objective_of_four_is_a_warning_at_75() -> None:
    checks = [check("a", CheckStatus.passed), check("b", CheckStatus.passed), check("c", CheckStatus.failed)]
    result = score_run(checks, ReviewVerdict.approve)
    assert result.score == 75.0
    assert result.result is ScoreResult.warning
    assert result.failed_key == []


def test_weights_count_in_the_score() -> None:
    checks = [
        check("a", CheckStatus.passed, weight=5),
        check("b", CheckStatus.passed, weight=3),
        check("c", CheckStatus.failed, weight=2),
    ]
    result = score_run(checks, ReviewVerdict.approve)  # (5 + 3 + 1) / 11
    assert result.score == pytest.approx(900 / 11)
    assert result.result is ScoreResult.warning
    low = score_run([*checks, check("d", CheckStatus.failed, weight=4)], ReviewVerdict.approve)  # 9 / 15
    assert low.score == pytest.approx(60.0)
    assert low.result is ScoreResult.failed


def test_a_failed_key_objective_fails_the_run_whatever_the_score() -> None:
    checks = [check(f"ok{i}", CheckStatus.passed) for i in range(9)] + [check("health", CheckStatus.failed, key=True)]
    result = score_run(checks, ReviewVerdict.approve)  # 10 of 11 weight passed
    assert result.score == pytest.approx(1000 / 11)
    assert result.result is ScoreResult.failed
    assert result.failed_key == ["health"]
    assert any("key objectives failed: health" in reason for reason in result.reasons)


def test_not_judged_objectives_leave_the_denominator_but_are_listed() -> None:
    judge = CriterionResult(
        id="intent", kind="judge", status=CheckStatus.not_judged, summary="no validation agent", weight=10, key=True
    )
    result = score_run([check("a", CheckStatus.passed), judge, check("b", CheckStatus.skipped)], ReviewVerdict.none)
    assert result.score == 100.0
    assert result.result is ScoreResult.passed
    assert result.not_judged == ["intent", "b", REVIEW_OBJECTIVE]
    assert any("not judged, left out of the score: intent, b, review" in reason for reason in result.reasons)


def test_a_check_that_could_not_run_counts_as_failed() -> None:
    result = score_run([check("a", CheckStatus.passed), check("probe", CheckStatus.error)], ReviewVerdict.approve)
    assert result.score == pytest.approx(200 / 3)
    assert result.result is ScoreResult.failed


def test_a_review_asking_for_changes_is_a_key_failure() -> None:
    result = score_run([check("a", CheckStatus.passed)], ReviewVerdict.request_changes)
    assert result.score == 50.0
    assert result.failed_key == [REVIEW_OBJECTIVE]
    assert result.result is ScoreResult.failed
    light = evaluate(objectives_from([check("a", CheckStatus.passed)], ReviewVerdict.request_changes, review_key=False))
    assert light.failed_key == [] and light.result is ScoreResult.failed  # 50 < 75


def test_nothing_judged_is_no_reason_to_pass() -> None:
    result = score_run([check("a", CheckStatus.not_judged)], ReviewVerdict.none)
    assert result.score == 0.0
    assert result.result is ScoreResult.failed
    assert evaluate([]).result is ScoreResult.failed


def test_thresholds_are_inclusive_and_configurable() -> None:
    nine_of_ten = [objective(f"p{i}", ObjectiveStatus.passed) for i in range(9)] + [
        objective("x", ObjectiveStatus.failed)
    ]
    assert evaluate(nine_of_ten).score == 90.0
    assert evaluate(nine_of_ten).result is ScoreResult.passed
    three_of_four = [objective(f"p{i}", ObjectiveStatus.passed) for i in range(3)] + [
        objective("x", ObjectiveStatus.failed)
    ]
    assert evaluate(three_of_four).result is ScoreResult.warning
    assert evaluate(three_of_four, Thresholds(passed=75, warning=50)).result is ScoreResult.passed
    assert evaluate(three_of_four, Thresholds(passed=95, warning=80)).result is ScoreResult.failed
    with pytest.raises(ValidationError, match=r"warning threshold 95\.0 is above the pass threshold 90\.0"):
        Thresholds(passed=90, warning=95)
