"""Finding a workspace's secrets: the always-forbidden files, the values in them, and what the worker
itself holds, so every tool output can be redacted and every command confined around them."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from rules.gateway.paths import ALWAYS_FORBIDDEN, forbidden
from rules.redact import dotenv_values, environment_secrets

WALK_LIMIT = 100_000  # entries a listing, search or secret scan visits before it stops
_SECRET_TEXT_LIMIT = 64 * 1024


@dataclass
class SecretScan:
    """The secret files of a workspace (and its git internals), found in one walk."""

    files: list[str] = field(default_factory=list)  # workspace-relative
    dirs: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # every symbolic link: where it points
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # every file: size, modification time


def scan_secrets(root: Path) -> SecretScan:
    """Secret files (always-forbidden paths, git excluded) and the values to redact everywhere."""
    found = SecretScan(values=environment_secrets(os.environ))
    visited = 0
    for folder, dirs, files in os.walk(root):
        relative_folder = os.path.relpath(folder, root)
        prefix = "" if relative_folder == "." else relative_folder.replace(os.sep, "/") + "/"
        kept = []
        for name in dirs:
            relative = prefix + name
            if name == ".git":
                continue
            if os.path.islink(os.path.join(folder, name)):
                found.links[relative] = os.readlink(os.path.join(folder, name))
            if forbidden(relative) or forbidden(relative + "/x"):
                found.dirs.append(relative)  # hidden whole; its files are still walked, for their values
            kept.append(name)
        dirs[:] = kept
        for name in files:
            relative = prefix + name
            if name == ".git":
                continue
            full = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                info = os.lstat(full)
                found.stats[relative] = (info.st_size, info.st_mtime_ns)
            if os.path.islink(full):
                found.links[relative] = os.readlink(full)
            if forbidden(relative):
                found.files.append(relative)
                found.values += secret_values(Path(folder) / name)
        visited += len(files) + len(dirs)
        if visited > WALK_LIMIT:
            break
    return found


def git_secret_attributes() -> str:
    """A gitattributes file marking every always-forbidden path binary (no diff, no text conversion).

    Patterns are spelled case-insensitively (`[eE][nN][vV]`), as the gateway matches them.
    """
    lines = []
    for pattern in ALWAYS_FORBIDDEN:
        if pattern.startswith(".git") or pattern in {"**/.git", "**/.git/**"}:
            continue
        spelled = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in pattern)
        lines.append(f"{spelled} -diff -merge -textconv binary")
    return "\n".join(lines) + "\n"


def secret_values(path: Path) -> list[str]:
    """Values in a secret file worth redacting: `.env` assignments and long tokens (netrc, credentials)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _SECRET_TEXT_LIMIT:
            return []
        text = path.read_text(errors="replace")
    except OSError:
        return []
    values = dotenv_values(text)
    for token in text.replace("=", " ").split():
        token = token.strip("'\"")
        if len(token) >= 12 and token not in values and not token.startswith("-----"):
            values.append(token)
    return values


def holds_secret(path: Path, values: list[str]) -> str | None:
    if not values or path.is_symlink() or not path.is_file() or path.stat().st_size > 16 * 1024 * 1024:
        return None
    data = read_bytes(path) or b""
    return "a copy of a secret value" if any(value.encode() in data for value in values) else None


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None
