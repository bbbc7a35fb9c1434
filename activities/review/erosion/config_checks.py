"""Weakened test configuration: coverage thresholds lowered, test commands made unable to fail.

An agent that cannot make the tests pass can instead lower `fail_under`, ignore a test folder or
append `|| true`. These are read from the configuration files that hold such settings, by pattern.
"""

from __future__ import annotations

import posixpath
import re

from activities.review.erosion.testfiles import FileChange, added_line_numbers
from contracts.evidence import Finding
from rules.gateway.paths import matches

CONFIG_FILES = [
    "**/pyproject.toml", "**/setup.cfg", "**/tox.ini", "**/pytest.ini", "**/.coveragerc", "**/noxfile.py",
    "**/package.json", "**/jest.config.*", "**/vitest.config.*", "**/karma.conf.*", "**/.nycrc*", "**/.c8rc*",
    "**/codecov.yml", "**/.codecov.yml", "**/Makefile", "**/*.mk", "**/justfile", "**/Taskfile.yml",
    "**/Cargo.toml", "**/pom.xml", "**/build.gradle*", "**/.github/workflows/**", "**/.gitlab-ci.yml",
    "**/scripts/test*", "**/.ci/**",
]
# A threshold: the name that identifies it (group `key`) and its number (group `value`).
THRESHOLDS = [
    re.compile(r"(?P<key>fail_under|fail-under|cov-fail-under|min[_-]coverage)\s*[=:]?\s*['\"]?(?P<value>\d+(?:\.\d+)?)"),
    re.compile(r"['\"]?(?P<key>branches|functions|lines|statements)['\"]?\s*:\s*(?P<value>\d+(?:\.\d+)?)"),
    re.compile(r"(?P<key>target|threshold)\s*:\s*['\"]?(?P<value>\d+(?:\.\d+)?)%"),
    re.compile(r"<(?P<key>minimum|coveredratio)>\s*(?P<value>\d+(?:\.\d+)?)", re.I),
]
# Additions that make a test command pass whatever the tests do, or run fewer of them.
WEAKENERS = [
    (re.compile(r"\|\|\s*(?:true|:|exit\s+0)\b"), "a failure is ignored (`|| true`)"),
    (re.compile(r"--passWithNoTests|--exit-zero|continue-on-error:\s*true|allow_failure:\s*true"),
     "failures or missing tests are allowed"),
    (re.compile(r"-k\s+['\"]?not\b|--deselect\b|--ignore(?:-glob)?[= ]|--testPathIgnorePatterns|"
                r"testPathIgnorePatterns|--skip\b|-DskipTests|maven\.test\.skip|-x\s+test\b"),
     "tests are deselected or ignored"),
    (re.compile(r"['\"]test['\"]\s*:\s*['\"](?:echo|true|exit 0)"), "the test script no longer runs tests"),
    (re.compile(r"--no-cov\b|--cov-fail-under[= ]0\b"), "coverage is no longer enforced"),
]


def is_config_file(path: str) -> bool:
    return bool(matches(path, CONFIG_FILES)) or posixpath.basename(path) in {"Makefile", "justfile"}


def _thresholds(text: str) -> dict[str, tuple[float, int]]:
    """Threshold name -> (lowest value, its line): one file may set several of the same name."""
    found: dict[str, tuple[float, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern in THRESHOLDS:
            for match in pattern.finditer(line):
                key, value = match.group("key").lower().replace("-", "_"), float(match.group("value"))
                if key not in found or value < found[key][0]:
                    found[key] = (value, number)
    return found


def config_findings(change: FileChange) -> list[Finding]:
    if not is_config_file(change.path) or change.before is None:
        return []
    before, after = change.before, change.after or ""
    findings: list[Finding] = []
    old, new = _thresholds(before), _thresholds(after)
    for key, (value, line) in old.items():
        if key not in new:
            findings.append(Finding(rule="coverage-lowered", path=change.path, line=line, side="base", message=(
                f"coverage threshold `{key}` ({value:g}) removed")))
        elif new[key][0] < value:
            findings.append(Finding(rule="coverage-lowered", path=change.path, line=new[key][1], message=(
                f"coverage threshold `{key}` lowered from {value:g} to {new[key][0]:g}")))
    lines = after.splitlines()
    added = added_line_numbers(before, after)
    for pattern, why in WEAKENERS:
        if len(pattern.findall(after)) <= len(pattern.findall(before)):
            continue  # moved or reformatted, not added
        findings.extend(Finding(rule="test-command-weakened", path=change.path, line=number,
                                message=f"{why}: {lines[number - 1].strip()[:120]}")
                        for number in added if pattern.search(lines[number - 1]))
    return findings
