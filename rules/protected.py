"""Protected paths: files whose change always needs a person, at every autonomy level.

A change to the factory's own policy, to CI or to ownership rules changes what every LATER change may
do; letting one agent change merge itself would let it raise its own autonomy. So these never merge
on their own, whatever the spec allows. Repositories add patterns in their policy; a default can only
be removed by an explicit `protected.opt_out` entry, which every evidence report shows, and which
lives in `.spec2ship/policy.yaml`, itself protected (the factory's own files cannot be opted out).
"""

from __future__ import annotations

from pydantic import BaseModel

from contracts.evidence import Finding
from contracts.gate import Policy, ProtectedPattern, RiskRules
from rules.gateway.paths import matches


class ProtectedGroup(BaseModel):
    name: str
    why: str
    patterns: list[str]


FACTORY = ProtectedGroup(
    name="factory",
    why="the factory's own policy, model registry and tool grants: a change here changes what every later run "
        "may do",
    patterns=[".spec2ship/**", "spec2ship.yaml", "spec2ship.yml", ".mcp.json", "mcp.json", "mcp.yaml", "mcp.yml"],
)
AGENT_INSTRUCTIONS = ProtectedGroup(
    name="agent-instructions",
    why="instructions every later agent reads: a change here steers every later change",
    patterns=["AGENTS.md", "CLAUDE.md", ".cursorrules", ".github/copilot-instructions.md"],
)
AUTOMATION = ProtectedGroup(
    name="automation",
    why="CI and automation: a change here changes what checks every later change",
    patterns=[".github/workflows/**", ".github/actions/**", ".gitlab-ci.yml", ".gitlab/ci/**", ".ci/**",
              "Jenkinsfile", "**/Jenkinsfile", ".circleci/**", ".buildkite/**", "azure-pipelines.yml",
              ".travis.yml", "bitbucket-pipelines.yml", ".pre-commit-config.yaml", ".github/dependabot.yml",
              "renovate.json", ".github/renovate.json"],
)
OWNERSHIP = ProtectedGroup(
    name="ownership",
    why="ownership and review rules: a change here changes who must approve what",
    patterns=["CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"],
)
LOCK_FILES = ProtectedGroup(
    name="lock-files",
    why="dependency lock files (the policy's protected.lock_files): a change here changes the code that runs",
    patterns=["**/poetry.lock", "**/uv.lock", "**/Pipfile.lock", "**/pdm.lock", "**/package-lock.json",
              "**/npm-shrinkwrap.json", "**/yarn.lock", "**/pnpm-lock.yaml", "**/bun.lockb", "**/Cargo.lock",
              "**/go.sum", "**/Gemfile.lock", "**/composer.lock", "**/gradle.lockfile", "**/packages.lock.json",
              "**/mix.lock", "**/flake.lock"],
)
DEFAULT_GROUPS = [FACTORY, AGENT_INSTRUCTIONS, AUTOMATION, OWNERSHIP]
REPOSITORY_GROUP = "repository"


def _expand(groups: list[ProtectedGroup]) -> list[ProtectedPattern]:
    return [ProtectedPattern(pattern=p, group=g.name, why=g.why) for g in groups for p in g.patterns]


def default_patterns() -> set[str]:
    return {p for g in DEFAULT_GROUPS for p in g.patterns}


def opt_out_refusal(pattern: str) -> str | None:
    """Why `pattern` cannot be opted out, or None when it can."""
    if pattern in FACTORY.patterns:
        return (f"{pattern!r} guards the factory's own files and cannot be opted out: a change to the policy "
                "must always be approved by a person")
    if pattern not in default_patterns():
        known = ", ".join(sorted(default_patterns() - set(FACTORY.patterns)))
        return f"{pattern!r} is not a default protected pattern; the ones that can be opted out are: {known}"
    return None


def rules_for(policy: Policy) -> RiskRules:
    """Defaults, minus the opt-outs, plus lock files when asked for, plus the repository's own patterns."""
    protected = policy.protected
    groups = [*DEFAULT_GROUPS, *([LOCK_FILES] if protected.lock_files else [])]
    kept = [p for p in _expand(groups) if p.pattern not in protected.opt_out]
    added = [ProtectedPattern(pattern=p, group=REPOSITORY_GROUP, why="protected by this repository's policy")
             for p in protected.add]
    return RiskRules(protected=kept + added, opted_out=list(protected.opt_out),
                     test_patterns=list(policy.tests.patterns))


def protected_findings(paths: list[str], rules: RiskRules) -> list[Finding]:
    """One finding per changed path that falls under a protected pattern (case-insensitive: on a
    case-insensitive file system `codeowners` is the same file as `CODEOWNERS`)."""
    findings: list[Finding] = []
    for path in paths:
        for entry in rules.protected:
            if matches(path, [entry.pattern], ignore_case=True):
                findings.append(Finding(rule="protected-path", path=path, message=(
                    f"protected ({entry.group}, {entry.pattern!r}): {entry.why}")))
                break
    return findings
