"""The evidence score of one run, in the manner of Keptn's SLO evaluation.

Every acceptance check of the run, and the review verdict, is an objective with a weight. Key
objectives gate the whole run: one failed key objective fails it, whatever the score. The score is
the weight of the passed objectives over the weight of all judged ones, times 100; objectives that
were not judged (a judge criterion without a validation agent, a skipped check, no review agent)
leave the denominator but are listed, so the report shows what the score did not look at. The
result is `pass` at or above the pass threshold (default 90), `warning` at or above the warning
threshold (default 75), `fail` below that, and `fail` when nothing at all was judged: no evidence is
no reason to merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from contracts.evidence import CheckStatus, CriterionResult, ReviewVerdict

REVIEW_OBJECTIVE = "review"


class ObjectiveStatus(StrEnum):
    passed = "passed"
    failed = "failed"
    not_judged = "not_judged"


class ScoreResult(StrEnum):
    passed = "pass"
    warning = "warning"
    failed = "fail"


class Objective(BaseModel):
    id: str
    kind: str = Field(description="The criterion kind (http, run, judge, ci) or 'review'.")
    status: ObjectiveStatus
    weight: float = Field(default=1.0, ge=0)
    key: bool = False
    summary: str = ""


class Thresholds(BaseModel):
    passed: float = Field(default=90.0, ge=0, le=100)
    warning: float = Field(default=75.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warning > self.passed:
            raise ValueError(f"warning threshold {self.warning} is above the pass threshold {self.passed}")
        return self


class EvidenceScore(BaseModel):
    score: float = Field(ge=0, le=100)
    result: ScoreResult
    objectives: list[Objective]
    failed_key: list[str] = Field(default_factory=list, description="Key objectives that failed the run.")
    not_judged: list[str] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    reasons: list[str] = Field(default_factory=list)


_CHECK_STATUS = {
    CheckStatus.passed: ObjectiveStatus.passed,
    CheckStatus.failed: ObjectiveStatus.failed,
    CheckStatus.error: ObjectiveStatus.failed,  # a check that could not run is no evidence of success
    CheckStatus.not_judged: ObjectiveStatus.not_judged,
    CheckStatus.skipped: ObjectiveStatus.not_judged,
}
_REVIEW_STATUS = {
    ReviewVerdict.approve: ObjectiveStatus.passed,
    ReviewVerdict.request_changes: ObjectiveStatus.failed,
    ReviewVerdict.none: ObjectiveStatus.not_judged,
}


def objectives_from(
    criteria: Sequence[CriterionResult],
    review: ReviewVerdict = ReviewVerdict.none,
    *,
    review_weight: float = 1.0,
    review_key: bool = True,
) -> list[Objective]:
    """One objective per criterion result (its own weight and key flag), plus the review verdict."""
    objectives = [
        Objective(
            id=criterion.id,
            kind=criterion.kind,
            status=_CHECK_STATUS[criterion.status],
            weight=criterion.weight,
            key=criterion.key,
            summary=criterion.summary,
        )
        for criterion in criteria
    ]
    objectives.append(
        Objective(
            id=REVIEW_OBJECTIVE,
            kind="review",
            status=_REVIEW_STATUS[review],
            weight=review_weight,
            key=review_key,
            summary=f"review verdict: {review.value}",
        )
    )
    return objectives


def evaluate(objectives: Sequence[Objective], thresholds: Thresholds | None = None) -> EvidenceScore:
    """Score the objectives and decide pass / warning / fail (see the module docstring)."""
    thresholds = thresholds or Thresholds()
    judged = [o for o in objectives if o.status is not ObjectiveStatus.not_judged]
    not_judged = [o.id for o in objectives if o.status is ObjectiveStatus.not_judged]
    failed_key = [o.id for o in judged if o.key and o.status is ObjectiveStatus.failed]
    total = sum(o.weight for o in judged)
    passed = sum(o.weight for o in judged if o.status is ObjectiveStatus.passed)
    score = 100.0 * passed / total if total > 0 else 0.0
    reasons: list[str] = []
    if total <= 0:
        result = ScoreResult.failed
        reasons.append("no objective was judged (or all judged ones weigh 0): there is no evidence to pass on")
    elif failed_key:
        result = ScoreResult.failed
        reasons.append(f"key objectives failed: {', '.join(failed_key)}")
    elif score >= thresholds.passed:
        result = ScoreResult.passed
    elif score >= thresholds.warning:
        result = ScoreResult.warning
    else:
        result = ScoreResult.failed
    if total > 0:
        reasons.insert(
            0,
            f"score {score:.1f} ({passed:g} of {total:g} weight passed; pass at {thresholds.passed:g}, "
            f"warning at {thresholds.warning:g})",
        )
    if not_judged:
        reasons.append(f"not judged, left out of the score: {', '.join(not_judged)}")
    return EvidenceScore(
        score=score,
        result=result,
        objectives=list(objectives),
        failed_key=failed_key,
        not_judged=not_judged,
        thresholds=thresholds,
        reasons=reasons,
    )


def score_run(
    criteria: Sequence[CriterionResult],
    review: ReviewVerdict = ReviewVerdict.none,
    thresholds: Thresholds | None = None,
) -> EvidenceScore:
    """The gate's shortcut: objectives from the run's evidence, then the evaluation."""
    return evaluate(objectives_from(criteria, review), thresholds)
