"""The webhook's one dependency on GitHub: who may steer a run, and where to answer.

`IssueForge` is the slice of `activities.forge.base.Forge` the webhook needs, so the real GitHub
forge serves as-is and the tests hand in a recorder. The forge is blocking (PyGithub); the handlers
call it in a thread with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from contracts.forge import PullRequest, RepoRef

STEERING_PERMISSIONS = frozenset({"admin", "write"})


class IssueForge(Protocol):
    def permission(self, user: str) -> str:
        """`admin`, `write`, `read` or `none`."""
        ...

    def comment(self, pr: PullRequest | None, issue_number: int | None, body: str) -> None: ...


ForgeFactory = Callable[[RepoRef], IssueForge]


def github_forge(repo: RepoRef) -> IssueForge:
    """The real forge for a delivery's repository (GitHub App installation from the delivery).

    Imported on first use so the server starts (and its tests run) without GitHub credentials.
    """
    from activities.forge.registry import forge_for

    forge: IssueForge = forge_for(repo)
    return forge
