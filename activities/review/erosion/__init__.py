"""The test-erosion check: a change must not make the build green by weakening the tests.

Deleted test files, removed tests, removed or trivially true assertions, added skip/xfail markers,
lowered coverage thresholds and weakened test commands are findings. They never reject on their own
(a person may approve a deliberate removal); they take autonomous merge away at every level.
"""

from __future__ import annotations

from activities.review.erosion.config_checks import config_findings, is_config_file
from activities.review.erosion.pattern_tests import pattern_findings
from activities.review.erosion.python_tests import python_findings
from activities.review.erosion.testfiles import FileChange, is_test_file, language_of
from contracts.evidence import Finding

__all__ = ["FileChange", "erosion_findings", "wanted"]


def wanted(path: str, test_patterns: list[str]) -> bool:
    """Whether the check needs this file's two versions."""
    return is_test_file(path, test_patterns) or is_config_file(path)


def erosion_findings(changes: list[FileChange], test_patterns: list[str]) -> list[Finding]:
    tests = [c for c in changes if is_test_file(c.path, test_patterns) or (
        c.old_path is not None and is_test_file(c.old_path, test_patterns))]
    python = [c for c in tests if language_of(c.old_path or c.path) == "python" or language_of(c.path) == "python"]
    findings = python_findings(python)
    for change in tests:
        if change in python:
            continue
        if language_of(change.path) is None and change.deleted:
            findings.append(Finding(rule="test-deleted", path=change.path, message="test file deleted"))
            continue
        findings.extend(pattern_findings(change))
    for change in changes:
        findings.extend(config_findings(change))
    return findings
