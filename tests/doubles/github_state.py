"""What the fake GitHub holds in memory: users, repositories, issues and pull requests (one number space,
as on GitHub), comments, labels, commit statuses, collaborators, apps, installations and tokens.

Plain dataclasses, no HTTP: `github_shapes` renders them as GitHub's JSON and `github_server` mutates
them under one lock. The git objects themselves live in a bare repository per repo (`github_git`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


_ids = itertools.count(1001)


def next_id() -> int:
    """Ids are unique across every kind of object, which is more than GitHub promises and enough here."""
    return next(_ids)


class Role(StrEnum):
    """Repository roles; `legacy` is what GET .../collaborators/{user}/permission reports as `permission`."""

    admin = "admin"
    maintain = "maintain"
    write = "write"
    triage = "triage"
    read = "read"

    @property
    def legacy(self) -> str:
        return {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}[self.value]


@dataclass
class User:
    login: str
    id: int = field(default_factory=next_id)
    type: str = "User"  # "User", "Organization" or "Bot"
    name: str | None = None


@dataclass
class Label:
    name: str
    color: str = "ededed"
    description: str | None = None
    id: int = field(default_factory=next_id)


@dataclass
class Comment:
    issue_number: int
    body: str
    user: User
    id: int = field(default_factory=next_id)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class Pull:
    """The pull-request half of an `Issue`. The head sha follows the branch until the PR closes."""

    head_ref: str
    base_ref: str
    base_sha: str
    mergeable: bool = True
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: User | None = None
    merge_commit_sha: str | None = None
    frozen_head_sha: str | None = None


@dataclass
class Issue:
    number: int
    title: str
    body: str | None
    user: User
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    pull: Pull | None = None
    id: int = field(default_factory=next_id)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None

    def touch(self) -> None:
        self.updated_at = now()


@dataclass
class Status:
    sha: str
    state: str
    description: str | None
    target_url: str | None
    context: str
    creator: User
    id: int = field(default_factory=next_id)
    created_at: datetime = field(default_factory=now)


@dataclass
class Repo:
    owner: User
    name: str
    default_branch: str
    bare: Path
    private: bool = True
    id: int = field(default_factory=next_id)
    created_at: datetime = field(default_factory=now)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # keyed by lower-case name, as GitHub matches
    collaborators: dict[str, Role] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    installation_id: int | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    def next_number(self) -> int:
        return max(self.issues, default=0) + 1

    def role_of(self, login: str) -> Role | None:
        if login.lower() == self.owner.login.lower():
            return Role.admin
        for user, role in self.collaborators.items():
            if user.lower() == login.lower():
                return role
        return None


@dataclass
class App:
    id: int
    slug: str
    name: str
    public_key_pem: str
    owner: User
    bot: User


@dataclass
class Installation:
    id: int
    app: App
    account: User
    repos: list[str]
    created_at: datetime = field(default_factory=now)


@dataclass
class Token:
    """A credential the fake accepts: a personal token (user) or an installation token (app bot)."""

    value: str
    user: User
    expires_at: datetime | None = None
    installation: Installation | None = None
