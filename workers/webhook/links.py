"""Which issue's run owns a pull request, a branch or a CI result.

The choice: read it from what the run itself wrote, with no lookup. A run's branch is named
`spec2ship/issue-<n>-<slug>` and its PR body says `Closes #<n>` (GitHub's closing keyword, which also
closes the issue on merge). Branch names arrive with pull_request, check_suite and workflow_run
events; comments on a PR carry only the PR's body, hence both. A lookup in Temporal visibility would
need a PR-number search attribute and would lag behind the PR by the visibility delay; the names
need neither. A comment on a PR is trusted to its body alone (the commenter has write permission, so
could as well comment on the issue). Otherwise only branches under `spec2ship/` count, so a person's
PR that happens to close a spec's issue never steers the spec's run.
"""

from __future__ import annotations

import re

from contracts.github import MAX_ISSUE_NUMBER

BRANCH_PREFIX = "spec2ship/"

# ASCII digits only (`\d` would take any script's digits, which `int()` reads), at most ten of them.
_BRANCH = re.compile(r"\Aspec2ship/issue-(?P<number>[0-9]{1,10})(?:-|\Z)")
# GitHub's closing keywords, case-insensitive, with `#N` in the same repository.
_CLOSES = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(?P<number>[0-9]{1,10})\b", re.IGNORECASE | re.ASCII
)


def _issue_number(digits: str) -> int | None:
    """Only what can be an issue number: `issue-0` or `#99999999999` names no issue, and starts nothing."""
    number = int(digits)
    return number if 0 < number <= MAX_ISSUE_NUMBER else None


def issue_from_branch(branch: str | None) -> int | None:
    match = _BRANCH.match(branch or "")
    return _issue_number(match["number"]) if match else None


def issue_from_body(body: str | None) -> int | None:
    """The issue a PR body closes (the first one named), if any."""
    match = _CLOSES.search(body or "")
    return _issue_number(match["number"]) if match else None


def issue_for_pull_request(branch: str | None, body: str | None) -> int | None:
    """The issue whose run opened this PR: from the branch, else from `Closes #N` when the branch is ours."""
    from_branch = issue_from_branch(branch)
    if from_branch is not None:
        return from_branch
    if branch is not None and branch.startswith(BRANCH_PREFIX):
        return issue_from_body(body)
    return None
