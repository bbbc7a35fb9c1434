"""The evidence report attached to the PR: what was checked, what was seen, what was decided, why."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.agents import AgentPlan
from contracts.evidence import CheckStatus, CriterionResult, PreviewEvidence, ReviewResult
from contracts.gate import GateDecision

MARKER = "<!-- spec2ship:evidence -->"
_ICON = {
    CheckStatus.passed: "✅ passed",
    CheckStatus.failed: "❌ failed",
    CheckStatus.error: "⚠️ error",
    CheckStatus.not_judged: "⏸️ not judged",
    CheckStatus.skipped: "⏭️ skipped",
}


class ReportInput(BaseModel):
    workflow_id: str
    spec_title: str
    service: str
    team: str
    criteria: list[CriterionResult] = Field(default_factory=list)
    preview: PreviewEvidence | None = None
    reviews: list[ReviewResult] = Field(default_factory=list)
    decision: GateDecision | None = None
    plan: AgentPlan | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    human_actions: list[str] = Field(default_factory=list)
    ui_url: str | None = None
    requested_by: str = ""
    policy_source: str | None = Field(default=None, description="Where the gate's policy came from.")
    opted_out: list[str] = Field(default_factory=list, description="Default protected patterns the policy removed.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def _details(title: str, body: str) -> str:
    fence = "````" if "```" in body else "```"
    return f"<details><summary>{title}</summary>\n\n{fence}\n{body.strip()[:4000]}\n{fence}\n</details>\n"


def _risk_section(report: ReportInput) -> list[str]:
    """Protected paths touched and test-erosion findings of the last round, each with file and line."""
    risks = report.reviews[-1].risks if report.reviews else []
    if not risks and not report.opted_out and not report.policy_source:
        return []
    lines = ["### Risk", ""]
    for check in risks:
        lines.append(f"- `{check.id}` {_ICON[check.status]}: {_cell(check.summary)}")
        for finding in check.findings[:40]:
            language = f" [{finding.language}]" if finding.language else ""
            lines.append(f"  - `{_cell(finding.located().split(': ', 1)[0])}` {finding.rule}{language}: "
                         f"{_cell(finding.message)}")
        if len(check.findings) > 40:
            lines.append(f"  - … and {len(check.findings) - 40} more")
    if report.reviews and not risks:
        lines.append("- no protected path changed; no test removed, skipped or weakened")
    if report.opted_out:
        lines.append(f"- protected by default but opted out by the policy: {', '.join(report.opted_out)}")
    if report.policy_source:
        lines.append(f"- {report.policy_source}")
    return [*lines, ""]


def render_report(report: ReportInput) -> str:
    lines = [MARKER, f"## spec2ship evidence: {report.spec_title}", ""]
    requested = f" · requested by {report.requested_by}" if report.requested_by else ""
    lines.append(f"Service `{report.service}` · team `{report.team}` · run `{report.workflow_id}`{requested}")
    if report.ui_url:
        lines.append(f"· [Temporal UI]({report.ui_url})")
    lines.append("")
    if report.decision:
        lines.append(f"### Decision: **{report.decision.decision.value}** ({report.decision.level.value})")
        lines.extend(f"- {reason}" for reason in report.decision.reasons)
        lines.append("")
    lines.extend(_risk_section(report))
    lines += ["### Acceptance criteria", "", "| criterion | kind | result | observed |", "|---|---|---|---|"]
    for result in report.criteria:
        lines.append(f"| `{result.id}` | {result.kind} | {_ICON[result.status]} | {_cell(result.summary)} |")
    lines.append("")
    for result in report.criteria:
        if result.evidence:
            lines.append(_details(f"{result.id}: evidence", result.evidence))
    if report.preview:
        ready = f"ready after {report.preview.ready_after_s:.1f}s" if report.preview.ready else "never ready"
        lines.append(f"Preview ({report.preview.backend}): {ready}")
        if report.preview.confinement:
            lines.append(f"- {report.preview.confinement}")
        if report.preview.start_error:
            lines.append(f"- start error: {report.preview.start_error}")
        for leftover in report.preview.leftovers:
            lines.append(f"- not torn down: {_cell(leftover)}")
        lines.append("")
    if report.reviews:
        lines += ["### Review", ""]
        for review in report.reviews:
            model = f" by `{review.reviewer_model}`" if review.reviewer_model else ""
            lines.append(f"- round {review.round + 1}: **{review.verdict.value}**{model}")
            for check in review.checks:
                lines.append(f"  - `{check.id}` {_ICON[check.status]}: {_cell(check.summary)}")
            for comment in review.comments:
                where = f"`{comment.path}:{comment.line}` " if comment.path else ""
                lines.append(f"  - {where}{_cell(comment.body)}")
        lines.append("")
    if report.plan:
        lines += ["### Models", ""]
        for choice in (report.plan.coder, report.plan.reviewer, report.plan.validator):
            if choice:
                lines.append(f"- {choice.role.value}: `{choice.model}` ({choice.reason})")
        lines.append("")
    if report.human_actions:
        lines += ["### People", ""] + [f"- {action}" for action in report.human_actions] + [""]
    lines.append(f"Tokens used: {report.tokens:,} (≈ ${report.cost_usd:.4f})")
    return "\n".join(lines) + "\n"
