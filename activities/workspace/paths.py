"""Path rules shared by governance (deterministic, in workflows) and the tools (in activities).

Glob semantics are wcmatch's with GLOBSTAR: `src/**` is everything under `src/`, `**/.env` any `.env`.
"""

from __future__ import annotations

import posixpath

from wcmatch import glob

from specs.models import Constraints

_FLAGS = glob.GLOBSTAR | glob.DOTGLOB

# Never readable nor writable by any agent, whatever the spec says: repository internals and the
# usual homes of secrets. Reading them is how a prompt injection exfiltrates credentials.
ALWAYS_FORBIDDEN = [
    ".git/**",
    ".git",
    "**/.env",
    "**/.env.*",
    "**/*.pem",
    "**/*.key",
    "**/id_rsa*",
    "**/id_ed25519*",
    "**/.netrc",
    "**/.npmrc",
    "**/.pypirc",
    "**/credentials",
    "**/credentials.json",
    "**/.aws/**",
    "**/.ssh/**",
    ".spec2ship/secrets/**",
]


class PathRefused(Exception):
    """A tool argument names a path the agent may not use; the message is shown to the agent."""


def normalise(path: str) -> str:
    """A workspace-relative POSIX path, or PathRefused for anything that could escape the workspace."""
    if not isinstance(path, str) or not path.strip():
        raise PathRefused("path must be a non-empty string")
    if "\x00" in path:
        raise PathRefused("path contains a NUL byte")
    cleaned = path.strip().replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise PathRefused(f"path {path!r} is absolute; use a path relative to the repository root")
    joined = posixpath.normpath(cleaned)
    if joined == ".." or joined.startswith("../"):
        raise PathRefused(f"path {path!r} leaves the repository")
    return "" if joined == "." else joined


def matches(path: str, patterns: list[str]) -> str | None:
    """The first pattern that matches `path`, or None."""
    for pattern in patterns:
        if glob.globmatch(path, pattern, flags=_FLAGS):
            return pattern
    return None


def read_refusal(path: str) -> str | None:
    """Why reading `path` is refused, or None when it is allowed."""
    hit = matches(path, ALWAYS_FORBIDDEN)
    return f"{path!r} is never readable by agents (matches {hit!r})" if hit else None


def write_refusal(path: str, constraints: Constraints) -> str | None:
    """Why writing `path` is refused under the spec's constraints, or None when it is allowed."""
    if not path:
        return "cannot write the repository root"
    hit = matches(path, ALWAYS_FORBIDDEN)
    if hit:
        return f"{path!r} is never writable by agents (matches {hit!r})"
    forbidden = matches(path, constraints.forbid)
    if forbidden:
        return f"{path!r} is forbidden by the spec (constraints.forbid: {forbidden!r})"
    if matches(path, constraints.paths) is None:
        allowed = ", ".join(constraints.paths)
        return f"{path!r} is outside the paths the spec allows (constraints.paths: {allowed})"
    return None
