"""Deterministic review checks: scope against the spec's constraints, size, and a secret scan; and
the risk checks: protected paths and test erosion.

These run on every change, whoever (or whatever) wrote it. A failed review check rejects the change
at any autonomy level: no model can talk its way past them. A risk finding takes autonomous merge
away at every level: a person decides (a deliberate test removal or CI change can be right).
"""

from __future__ import annotations

import re

from activities.review.erosion import FileChange, erosion_findings
from contracts.evidence import CheckStatus, CriterionResult, Finding
from contracts.gate import RiskRules
from contracts.workspace import DiffStat
from rules.gateway.paths import write_refusal
from rules.protected import protected_findings
from rules.redact import redact
from specs.models import Constraints

_ADDED_LINE = re.compile(r"^\+(?!\+\+ )(.*)$", re.M)
_FILE_HEADER = re.compile(r"^\+\+\+ b/(\S+)", re.M)


def scope_check(stat: DiffStat, constraints: Constraints) -> CriterionResult:
    refusals = [reason for path in stat.files if (reason := write_refusal(path, constraints))]
    if refusals:
        return CriterionResult(
            id="scope", kind="review", status=CheckStatus.failed,
            summary=f"{len(refusals)} file(s) outside the allowed scope", evidence="\n".join(refusals),
        )
    return CriterionResult(
        id="scope", kind="review", status=CheckStatus.passed,
        summary=f"all {len(stat.files)} changed file(s) inside the allowed paths",
    )


def size_check(stat: DiffStat, constraints: Constraints) -> CriterionResult:
    limit = constraints.max_changed_lines
    changed = stat.changed_lines
    status = CheckStatus.passed if changed <= limit else CheckStatus.failed
    return CriterionResult(
        id="max-changed-lines", kind="review", status=status,
        summary=f"{changed} changed lines (+{stat.added} -{stat.removed}); limit {limit}",
    )


def secret_scan(diff: str) -> CriterionResult:
    """Look for credentials in ADDED lines only: removing a leaked key must not be punished."""
    findings: list[str] = []
    current = "?"
    for line in diff.splitlines():
        header = _FILE_HEADER.match(line)
        if header:
            current = header.group(1)
            continue
        if line.startswith("+") and not line.startswith("+++"):
            _, hits = redact(line[1:])
            if hits:
                findings.append(f"{current}: {redact(line[1:])[0].strip()[:120]}")
    if findings:
        return CriterionResult(
            id="secret-scan", kind="review", status=CheckStatus.failed,
            summary=f"{len(findings)} added line(s) look like credentials", evidence="\n".join(findings[:20]),
        )
    return CriterionResult(id="secret-scan", kind="review", status=CheckStatus.passed, summary="no credentials found")


def deterministic_checks(diff: str, stat: DiffStat, constraints: Constraints) -> list[CriterionResult]:
    return [scope_check(stat, constraints), size_check(stat, constraints), secret_scan(diff)]


def _risk(id_: str, findings: list[Finding], found: str, clean: str) -> CriterionResult:
    if findings:
        return CriterionResult(id=id_, kind="risk", status=CheckStatus.failed, summary=found.format(len(findings)),
                               evidence="\n".join(f.located() for f in findings[:40]), findings=findings)
    return CriterionResult(id=id_, kind="risk", status=CheckStatus.passed, summary=clean)


def risk_checks(paths: list[str], changes: list[FileChange], rules: RiskRules) -> list[CriterionResult]:
    """`protected-paths` and `test-erosion`, key objectives of the evidence score."""
    opted = f" (opted out by the policy: {', '.join(rules.opted_out)})" if rules.opted_out else ""
    return [
        _risk("protected-paths", protected_findings(paths, rules),
              "{} protected file(s) changed: a person must approve" + opted, "no protected path changed" + opted),
        _risk("test-erosion", erosion_findings(changes, rules.test_patterns),
              "{} test-erosion finding(s): a person must approve", "no test removed, skipped or weakened"),
    ]
