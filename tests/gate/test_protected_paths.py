"""Protected paths: the defaults, what a repository adds, the visible opt-out, and what can never be opted out."""

from __future__ import annotations

import pytest

from rules.policy import PolicyError, parse_policy
from rules.protected import DEFAULT_GROUPS, protected_findings, rules_for


def _touched(policy_text: str, paths: list[str]) -> list[str]:
    return [f.path for f in protected_findings(paths, rules_for(parse_policy(policy_text)))]


@pytest.mark.parametrize("path", [
    ".spec2ship/policy.yaml", ".spec2ship/anything/else.yaml", "spec2ship.yaml", ".mcp.json",
    ".github/workflows/ci.yml", ".github/actions/setup/action.yml", ".gitlab-ci.yml", ".ci/run", "Jenkinsfile",
    "services/api/Jenkinsfile", "CODEOWNERS", ".github/CODEOWNERS", "AGENTS.md", ".github/codeowners"])
def test_the_default_protected_paths(path: str) -> None:
    assert _touched("", [path]) == [path]


@pytest.mark.parametrize("path", ["src/app.py", "docs/ci.md", "tests/test_ci.py", "github/workflows.md",
                                  "poetry.lock"])
def test_ordinary_paths_are_not_protected(path: str) -> None:
    assert _touched("", [path]) == []


def test_lock_files_are_protected_when_the_policy_says_so() -> None:
    assert _touched("protected: {lock_files: true}", ["poetry.lock", "web/package-lock.json", "go.sum"]) == [
        "poetry.lock", "web/package-lock.json", "go.sum"]


def test_a_repository_adds_patterns_and_the_finding_says_so() -> None:
    rules = rules_for(parse_policy("protected: {add: ['deploy/**', 'migrations/*.sql']}"))
    findings = protected_findings(["deploy/prod/values.yaml", "migrations/001.sql", "src/x.py"], rules)
    assert [f.path for f in findings] == ["deploy/prod/values.yaml", "migrations/001.sql"]
    assert "protected by this repository's policy" in findings[0].message


def test_an_opt_out_removes_a_default_and_stays_visible() -> None:
    rules = rules_for(parse_policy("protected: {opt_out: ['.ci/**']}"))
    assert protected_findings([".ci/run"], rules) == []
    assert rules.opted_out == [".ci/**"]
    assert protected_findings([".github/workflows/ci.yml"], rules)


@pytest.mark.parametrize(("text", "message"), [
    ("protected: {opt_out: ['.spec2ship/**']}", "cannot be opted out"),
    ("protected: {opt_out: ['spec2ship.yaml']}", "cannot be opted out"),
    ("protected: {opt_out: ['src/**']}", "is not a default protected pattern"),
    ("protected: {add: ['']}", "protected.add.0: an empty pattern"),
    ("protected: {ad: ['x']}", "protected.ad: Extra inputs are not permitted"),
    ("tests: {pattern: ['x']}", "tests.pattern: Extra inputs are not permitted"),
])
def test_bad_protection_settings_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_risk_owners_default_to_the_escalation_owners() -> None:
    assert parse_policy("escalation: {owners: [alice]}").risk_owners == ["alice"]
    assert parse_policy("escalation: {owners: [alice]}\nprotected: {owners: [sec]}").risk_owners == ["sec"]


def test_every_default_group_says_why() -> None:
    assert all(group.why and group.patterns for group in DEFAULT_GROUPS)
