"""Path rules shared by governance (deterministic, in workflows) and the tools (in activities).

Glob semantics are wcmatch's with GLOBSTAR: `src/**` is everything under `src/`, `**/.env` any `.env`.
The always-forbidden list is matched without regard to case, so `.ENV` on a case-insensitive file system
is refused like `.env`; the spec's own globs keep their case.
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
    "**/.git",
    "**/.git/**",
    "**/.env",
    "**/.env.*",
    "**/*.env",
    "**/.envrc",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/*.jks",
    "**/*.keystore",
    "**/id_rsa*",
    "**/id_dsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "**/.netrc",
    "**/_netrc",
    "**/.npmrc",
    "**/.pypirc",
    "**/.git-credentials",
    "**/.dockercfg",
    "**/.docker/config.json",
    "**/credentials",
    "**/credentials.json",
    "**/.aws/**",
    "**/.ssh/**",
    "**/.ssh",
    "**/.gnupg/**",
    "**/.kube/config",
    ".spec2ship/secrets/**",
]

# Characters no legitimate path contains; they make a path read differently by people and by the kernel.
_CONTROL = {chr(code) for code in range(32)} | {"\x7f"}


class PathRefused(Exception):
    """A tool argument names a path the agent may not use; the message is shown to the agent."""


def normalise(path: str) -> str:
    """A workspace-relative POSIX path, or PathRefused for anything that could escape the workspace.

    Refused: absolute paths, drive letters, `~` (a home folder), `..` that leaves the root, NUL and
    other control characters (they make paths that logs and people read differently from the kernel).
    """
    if not isinstance(path, str) or not path.strip():
        raise PathRefused("path must be a non-empty string")
    if any(char in _CONTROL for char in path):
        raise PathRefused(f"path {path!r} contains a control character (NUL, newline, ...)")
    cleaned = path.strip().replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise PathRefused(f"path {path!r} is absolute; use a path relative to the repository root")
    if cleaned.startswith("~"):
        raise PathRefused(f"path {path!r} names a home folder; use a path relative to the repository root")
    if cleaned.lower().startswith("file:"):
        raise PathRefused(f"path {path!r} is a URL; use a path relative to the repository root")
    joined = posixpath.normpath(cleaned)
    if joined == ".." or joined.startswith("../"):
        raise PathRefused(f"path {path!r} leaves the repository")
    return "" if joined == "." else joined


def matches(path: str, patterns: list[str], ignore_case: bool = False) -> str | None:
    """The first pattern that matches `path`, or None."""
    flags = _FLAGS | (glob.IGNORECASE if ignore_case else 0)
    for pattern in patterns:
        if glob.globmatch(path, pattern, flags=flags):
            return pattern
    return None


def forbidden(path: str) -> str | None:
    """The always-forbidden pattern `path` falls under (case-insensitive), or None."""
    return matches(path, ALWAYS_FORBIDDEN, ignore_case=True)


def read_refusal(path: str) -> str | None:
    """Why reading `path` is refused, or None when it is allowed."""
    hit = forbidden(path)
    return f"{path!r} is never readable by agents (matches {hit!r})" if hit else None


def write_refusal(path: str, constraints: Constraints) -> str | None:
    """Why writing `path` is refused under the spec's constraints, or None when it is allowed."""
    if not path:
        return "cannot write the repository root"
    hit = forbidden(path)
    if hit:
        return f"{path!r} is never writable by agents (matches {hit!r})"
    refused = matches(path, constraints.forbid)
    if refused:
        return f"{path!r} is forbidden by the spec (constraints.forbid: {refused!r})"
    if matches(path, constraints.paths) is None:
        allowed = ", ".join(constraints.paths)
        return f"{path!r} is outside the paths the spec allows (constraints.paths: {allowed})"
    return None
