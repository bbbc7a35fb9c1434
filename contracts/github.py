"""What a GitHub name or number may look like before it becomes part of a workflow id, a path or a log line.

A webhook payload is signed by GitHub, but what it carries was typed by people (repository names, logins,
branch names) or counted by GitHub (issue numbers): the signature says who sent it, not that it is safe to
put in `spec2ship/<owner>/<repo>/issues/<n>`, in a folder name or in a visibility query. These types hold
GitHub's own rules, a little wider where GitHub Enterprise Server is (underscores in logins of managed
users), and refuse everything else: `../../etc`, an issue numbered -1 or 10**30, a login with a newline.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, StringConstraints

MAX_GITHUB_INT = 2**63 - 1
"""GitHub's ids (installations, comments) are 64-bit; anything larger did not come from GitHub."""
MAX_ISSUE_NUMBER = 2**31 - 1
"""Issue and pull request numbers count up from 1 per repository; 32 bits is far more than any has used."""

OWNER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
# Letters, digits, `.`, `-`, `_`, but never `.` or `..` (folders, not repositories; GitHub refuses them too).
# Spelt without look-ahead so that the same pattern serves pydantic, Helm's values schema and Go's RE2.
REPO_PATTERN = r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,98}|\.\.[A-Za-z0-9._-]{1,98})"

RepoFullName = Annotated[str, StringConstraints(pattern=rf"^{OWNER_PATTERN}/{REPO_PATTERN}$")]
"""`owner/name` as GitHub spells it: letters, digits, `-`, `_` (and `.` in the name), never `.` or `..`."""

Login = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:\[bot\])?$")]
"""A user or bot login (`octocat`, `alice_acme` on a managed enterprise, `github-actions[bot]`)."""

# Strict: a JSON number, never `true`, `7.0` or `"7"` that lax validation would turn into one.
IssueNumber = Annotated[int, Strict(), Field(gt=0, le=MAX_ISSUE_NUMBER)]
GitHubId = Annotated[int, Strict(), Field(gt=0, le=MAX_GITHUB_INT)]

EventName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""`X-GitHub-Event`: `issues`, `issue_comment`, `projects_v2_item`, ... (lower case, digits, underscores)."""

DeliveryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
"""`X-GitHub-Delivery`: a GUID from GitHub; the same on a redelivery, so it keys the webhook's spool."""

