"""Undo after every command, patch and MCP call: what the agent may not change is put back.

Before the call we note the out-of-scope files already changed, the secret files' bytes, git's
configuration, hooks and info, every symbolic link and every file's size and time; afterwards we put
secrets back byte for byte, restore git internals, remove new links onto secrets or out of the
repository and new copies of secret values, and restore or remove out-of-scope changes (looking again
when a reverted .gitignore reveals more). The caller reports what was reverted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from activities.forge.gitcli import GitResult
from activities.workspace.secrets import SecretScan, holds_secret, read_bytes
from contracts.workspace import ToolGrant
from rules.gateway.paths import forbidden, write_refusal


class Workspace(Protocol):
    """What undo needs of a workspace (activities.workspace.tools.Workspace is one)."""

    root: Path

    def git(self, args: list[str], stdin: str | None = None) -> GitResult: ...

    def secrets(self) -> SecretScan: ...

    def forget_secrets(self) -> None: ...

    def changed_files(self) -> set[str]: ...

    def git_paths(self) -> list[Path]: ...


@dataclass
class Snapshot:
    """What one call may not change, as it was before the call."""

    dirty: dict[str, str]  # out-of-scope paths already changed before the command: content digest
    secrets: dict[str, bytes | None]  # secret files: their bytes (None: a link or unreadable)
    secret_dirs: list[str]  # folders that are secret as a whole (.ssh, .aws)
    git: dict[str, bytes]  # git configuration, hooks, info: absolute path -> bytes
    links: dict[str, str]  # symbolic links anywhere in the workspace (ignored folders too)
    stats: dict[str, tuple[int, int]]  # every file's size and modification time


def take_snapshot(workspace: Workspace, grant: ToolGrant) -> Snapshot:
    dirty = {path: digest(workspace.root / path) for path in workspace.changed_files()
             if write_refusal(path, grant.constraints)}
    secrets: dict[str, bytes | None] = {}
    for relative in workspace.secrets().files:
        candidate = workspace.root / relative
        secrets[relative] = None if candidate.is_symlink() else read_bytes(candidate)
    tree = workspace.secrets()
    return Snapshot(dirty=dirty, secrets=secrets, secret_dirs=list(tree.dirs), git=protected_git_files(workspace),
                     links=dict(tree.links), stats=dict(tree.stats))


def undo(workspace: Workspace, before: Snapshot, grant: ToolGrant) -> list[str]:
    """Put back what the command may not change; return what was reverted (workspace-relative)."""
    reverted: list[str] = []
    now_git = protected_git_files(workspace)
    for path, data in before.git.items():
        if now_git.get(path) != data:
            target = Path(path)
            if target.is_symlink() or target.is_dir():
                remove(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            reverted.append(git_label(path, workspace.root))
    for path in now_git.keys() - before.git.keys():
        remove(Path(path))
        reverted.append(git_label(path, workspace.root))
    workspace.forget_secrets()
    current = workspace.secrets()
    for relative, saved in before.secrets.items():
        candidate = workspace.root / relative
        now = None if candidate.is_symlink() else read_bytes(candidate)
        if saved is not None and (now != saved or candidate.is_symlink()):
            remove(candidate)
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.write_bytes(saved)
            reverted.append(relative)
    for relative in current.dirs:
        if relative not in before.secret_dirs:
            remove(workspace.root / relative)
            reverted.append(relative)
    for relative in current.files:
        new_dir = any(relative.startswith(d + "/") for d in current.dirs if d not in before.secret_dirs)
        if relative not in before.secrets and not new_dir:
            remove(workspace.root / relative)
            reverted.append(relative)
    for relative, pointee in current.links.items():  # new links, also in ignored folders
        candidate = workspace.root / relative
        if before.links.get(relative) != pointee and bad_link(workspace.root, candidate):
            remove(candidate)
            reverted.append(relative)
    values = [value for value in current.values if len(value) >= 4]
    for relative, stats in current.stats.items():  # copies of secrets, also in ignored folders
        if before.stats.get(relative) != stats and relative not in reverted and not forbidden(relative):
            candidate = workspace.root / relative
            if holds_secret(candidate, values):
                _restore_orremove(workspace, relative)
                reverted.append(relative)
    for _ in range(3):  # a reverted .gitignore can reveal files it hid: look again
        found = _revert_out_of_scope(workspace, before, grant)
        if not found:
            break
        reverted += found
    workspace.forget_secrets()
    return sorted(set(reverted))


def _restore_orremove(workspace: Workspace, path: str) -> None:
    """Put a file back as the branch has it, or remove it when the branch does not have it."""
    candidate = workspace.root / path
    if workspace.git(["cat-file", "-e", f"HEAD:{path}"]).returncode == 0:
        remove(candidate)
        workspace.git(["restore", "--source=HEAD", "--staged", "--worktree", "--", path])
    else:
        workspace.git(["rm", "-q", "--cached", "--ignore-unmatch", "--", path])
        remove(candidate)


def _revert_out_of_scope(workspace: Workspace, before: Snapshot, grant: ToolGrant) -> list[str]:
    reverted: list[str] = []
    workspace.forget_secrets()
    tree = workspace.secrets()
    values = [value for value in tree.values if len(value) >= 4]
    for path in sorted(workspace.changed_files()):
        candidate = workspace.root / path
        if forbidden(path) and not path.startswith(".git"):
            continue  # secret files were put back byte for byte already
        if path in before.stats and tree.stats.get(path) == before.stats[path]:
            continue  # not touched by this command (an ignore rule that changed made it visible)
        refusal = write_refusal(path, grant.constraints)
        if refusal and path in before.dirty and before.dirty[path] == digest(candidate):
            continue
        if not refusal:
            refusal = bad_link(workspace.root, candidate) or holds_secret(candidate, values)
        if not refusal:
            continue
        _restore_orremove(workspace, path)
        reverted.append(path)
    return reverted


def bad_link(root: Path, candidate: Path) -> str | None:
    if not candidate.is_symlink():
        return None
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        return "a symbolic link out of the repository"
    real = resolved.relative_to(root).as_posix() if resolved != root else ""
    return "a symbolic link to a secret" if real and forbidden(real) else None


def protected_git_files(workspace: Workspace) -> dict[str, bytes]:
    """Git configuration, hooks and info of the workspace's repository: code the worker would run."""
    found: dict[str, bytes] = {}
    for path in workspace.git_paths():
        if path.is_file():
            found[str(path)] = path.read_bytes()
            continue
        for name in ("config", "config.worktree", "commondir", "gitdir", "HEAD"):
            candidate = path / name
            if candidate.is_file():
                found[str(candidate)] = candidate.read_bytes()
        for folder in ("hooks", "info"):
            for candidate in (path / folder).rglob("*") if (path / folder).is_dir() else []:
                if candidate.is_file() or candidate.is_symlink():
                    with contextlib.suppress(OSError):
                        found[str(candidate)] = candidate.read_bytes()
    return found


def digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    data = read_bytes(path)
    return hashlib.sha256(data).hexdigest() if data is not None else "absent"


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def git_label(path: str, root: Path) -> str:
    with contextlib.suppress(ValueError):
        return Path(path).relative_to(root).as_posix()
    return f"<git>/{Path(path).name}" if Path(path).parent.name not in {"hooks", "info"} else (
        f"<git>/{Path(path).parent.name}/{Path(path).name}")
