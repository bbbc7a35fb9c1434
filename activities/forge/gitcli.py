"""A small typed wrapper over the real `git` command line: the one way spec2ship (and its tests) run git.

Forges, workspaces and previews shell out to git instead of using a library binding so that what
spec2ship does to a repository is exactly what a person would get by typing the same command,
worktrees and hooks included. Every failure becomes a `GitError` that carries the command, the folder
and git's own stderr. Callers that must control the whole environment (an agent's workspace, a forge
with credentials) pass `base_env`; otherwise the worker's environment is the base.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from activities.forge.base import ForgeError

BOT_NAME = "spec2ship bot"
BOT_EMAIL = "bot@spec2ship.local"
BOT_IDENTITY: dict[str, str] = {"user.name": BOT_NAME, "user.email": BOT_EMAIL}

DEFAULT_TIMEOUT_S = 120.0

# Variables that make git look at another repository or identity than the one we name explicitly,
# e.g. when spec2ship itself runs inside a git hook. They are removed from the child environment.
_LOCATING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_IDENTITY_ENV = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")

# Stderr fragments that mean "someone else holds a lock right now": trying again later can help.
_TRANSIENT_MARKERS = ("index.lock", "cannot lock ref", ".lock': File exists", "Another git process seems")


class GitError(ForgeError):
    """A git command failed; `command`, `cwd`, `returncode` and `stderr` say which and why."""

    def __init__(
        self,
        command: list[str],
        cwd: Path,
        returncode: int | None,
        stderr: str,
        *,
        hint: str = "",
        retryable: bool = False,
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.returncode = returncode
        self.stderr = stderr
        shown = " ".join(command)
        what = f"exit {returncode}" if returncode is not None else "no exit status"
        detail = stderr.strip()[-2000:] or "(no output on stderr)"
        message = f"`{shown}` failed in {cwd} ({what}): {detail}"
        if hint:
            message = f"{message}. {hint}"
        super().__init__(message, retryable=retryable)


class GitResult(BaseModel):
    """What one git invocation produced."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class WorktreeInfo(BaseModel):
    """One entry of `git worktree list --porcelain`; the first entry is always the main worktree."""

    path: Path
    head: str | None = None
    branch: str | None = None  # short name (`main`), None when detached or bare
    bare: bool = False
    detached: bool = False
    locked: bool = False
    prunable: bool = False


class Git:
    """Runs git in one folder with fixed `-c` settings; cheap to copy for another folder with `at`."""

    def __init__(
        self,
        cwd: Path,
        *,
        config: Mapping[str, str] | None = None,
        identity: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.cwd = Path(cwd)
        self.config = dict(config or {})
        self.identity = dict(identity) if identity else None
        self.timeout_s = timeout_s
        self.base_env = dict(base_env) if base_env is not None else None

    def at(self, cwd: Path) -> Git:
        """The same settings, run in another folder (a worktree of the same repository, usually)."""
        return Git(cwd, config=self.config, identity=self.identity, timeout_s=self.timeout_s, base_env=self.base_env)

    def as_bot(self) -> Git:
        """The same settings, committing as the spec2ship bot whatever the user's own config says.

        The bot never runs the repository's hooks or fsmonitor: in a workspace an agent has touched,
        they would be code the agent could have planted, run with the worker's credentials.
        """
        config = {**self.config, "core.hooksPath": os.devnull, "core.fsmonitor": "false"}
        return Git(self.cwd, config=config, identity=BOT_IDENTITY, timeout_s=self.timeout_s, base_env=self.base_env)

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        hint: str = "",
    ) -> GitResult:
        """Run `git <args>`; raise `GitError` on a non-zero exit when `check` is set."""
        settings = {**self.config, **(self.identity or {})}
        command = ["git"]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        command += list(args)
        shown = ["git", *args]
        try:
            # Own process group: a timeout kills hooks and aliases git started too, not just git itself.
            with subprocess.Popen(
                command,
                cwd=self.cwd,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=self._env(env),
                start_new_session=True,
            ) as proc:
                try:
                    stdout, stderr = proc.communicate(input, timeout=self.timeout_s)
                except subprocess.TimeoutExpired as exc:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    raise GitError(
                        shown, self.cwd, None, f"timed out after {self.timeout_s:g}s", hint=hint, retryable=True
                    ) from exc
        except FileNotFoundError as exc:
            if not self.cwd.is_dir():
                raise GitError(shown, self.cwd, None, f"folder {self.cwd} does not exist", hint=hint) from exc
            raise GitError(
                shown, self.cwd, None, "the git executable was not found on PATH", hint="Install git and retry"
            ) from exc
        returncode = proc.returncode
        result = GitResult(args=list(args), returncode=returncode, stdout=stdout, stderr=stderr)
        if check and not result.ok:
            transient = any(marker in stderr for marker in _TRANSIENT_MARKERS)
            raise GitError(shown, self.cwd, returncode, stderr, hint=hint, retryable=transient)
        return result

    def out(self, *args: str, hint: str = "") -> str:
        """Stdout of a successful command, without the trailing newline."""
        return self.run(*args, hint=hint).stdout.rstrip("\n")

    def ok(self, *args: str) -> bool:
        """Whether the command exits 0 (for questions such as `merge-base --is-ancestor`)."""
        return self.run(*args, check=False).ok

    def rev(self, rev: str) -> str | None:
        """The commit a revision names, or None when it names none."""
        result = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return (result.stdout.strip() or None) if result.ok else None

    def worktrees(self) -> list[WorktreeInfo]:
        """All worktrees of the repository, main worktree first."""
        return parse_worktrees(self.out("worktree", "list", "--porcelain"))

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        base = os.environ if self.base_env is None else self.base_env
        env = {k: v for k, v in base.items() if k not in _LOCATING_ENV}
        if self.identity is not None:
            for key in _IDENTITY_ENV:
                env.pop(key, None)
        # Never wait for a password or an editor, and keep git's messages in English for the errors we parse.
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": ":", "LC_ALL": "C", "LANGUAGE": "C"})
        env.update(extra or {})
        return env


def parse_worktrees(porcelain: str) -> list[WorktreeInfo]:
    """Parse `git worktree list --porcelain` (blank-line separated records of `key value` lines)."""
    found: list[WorktreeInfo] = []
    for block in porcelain.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" not in fields:
            continue
        branch = fields.get("branch")
        found.append(
            WorktreeInfo(
                path=Path(fields["worktree"]),
                head=fields.get("HEAD"),
                branch=branch.removeprefix("refs/heads/") if branch else None,
                bare="bare" in fields,
                detached="detached" in fields,
                locked="locked" in fields,
                prunable="prunable" in fields,
            )
        )
    return found
