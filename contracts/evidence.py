"""What a run found out: check results, review verdicts, judgements. Everything the gate decides on."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class CheckStatus(StrEnum):
    passed = "passed"
    failed = "failed"
    error = "error"  # the check could not run (preview never ready, timeout)
    not_judged = "not_judged"  # a judge criterion with no validation agent configured
    skipped = "skipped"


class Finding(BaseModel):
    """One located observation of a risk check: which rule saw what, in which file and line."""

    rule: str = Field(description="e.g. protected-path, test-deleted, assertions-removed, skip-added.")
    path: str
    line: int | None = None
    side: Literal["change", "base"] = Field(
        default="change", description="Which version `line` counts in: removed code only exists in the base.")
    language: str | None = Field(default=None, description="How the file was analysed (python, go, ...).")
    message: str

    def located(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        if self.line and self.side == "base":
            where += " (base)"
        return f"{where}: {self.rule}: {self.message}"


class CriterionResult(BaseModel):
    id: str
    # `risk`: what the change touches (protected paths, eroded tests). Never rejects on its own; it
    # takes autonomous merge away, at every level.
    kind: Literal["http", "run", "judge", "ci", "review", "risk"]
    status: CheckStatus
    summary: str = Field(description="One line: what was observed.")
    evidence: str = Field(default="", description="Output tail, response excerpt or the judge's reasoning.")
    duration_s: float = 0.0
    key: bool = True
    weight: float = 1.0
    findings: list[Finding] = Field(default_factory=list)


class ReviewComment(BaseModel):
    path: str | None = None
    line: int | None = None
    body: str


class ReviewVerdict(StrEnum):
    approve = "approve"
    request_changes = "request_changes"
    none = "none"  # no review agent configured


class ReviewResult(BaseModel):
    """Deterministic checks plus (optionally) the review agent's verdict for one round."""

    round: int
    verdict: ReviewVerdict
    checks: list[CriterionResult] = Field(default_factory=list)
    comments: list[ReviewComment] = Field(default_factory=list)
    reviewer_model: str | None = None

    @property
    def blocking_failures(self) -> list[CriterionResult]:
        """Failed review checks (scope, size, secrets): these reject. Risk findings do not block the
        review; they go to the gate, which escalates them to a person."""
        return [c for c in self.checks if c.kind != "risk" and c.status is not CheckStatus.passed]

    @property
    def risks(self) -> list[CriterionResult]:
        return [c for c in self.checks if c.kind == "risk" and c.status is not CheckStatus.passed]


class PreviewEvidence(BaseModel):
    backend: str
    url: str | None = None
    ready: bool = False
    ready_after_s: float | None = None
    start_error: str | None = None
    log_tail: str = ""
    confinement: str | None = Field(default=None, description="How the preview's processes were confined "
                                                                "(and what that means); None: not recorded.")
    results: list[CriterionResult] = Field(default_factory=list)
    leftovers: list[str] = Field(
        default_factory=list, description="What teardown could not remove (with why); empty when all went."
    )
