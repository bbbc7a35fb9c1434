"""The workspace tools agents call: list_files, read_file, search, write_file, apply_patch, run_command,
and the granted MCP tools (mcp_tools.py).

Each tool re-checks the gateway's verdict (defence in depth: the workflow already checked), works only
inside the workspace and never through a symbolic link that leaves it or lands on a secret, bounds what
it reads and returns, and redacts secrets before anything reaches a model. run_command runs confined
(sandbox.py) where the machine allows it, with a scrubbed environment and resource limits, and what it
changed outside the allowed paths is undone afterwards. rules/gateway/__init__.py has the whole model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import regex

from activities.workspace.sandbox import (
    MARKER,
    Confinement,
    SandboxMounts,
    SandboxUnavailable,
    bwrap_argv,
    choose,
    kill_marked,
    with_limits,
)
from contracts.agents import ToolCall, ToolSpec
from contracts.workspace import ToolGrant, ToolResult, ToolStatus
from rules.gateway.commands import check_command
from rules.gateway.governor import check_call
from rules.gateway.grants import MCP_PREFIX
from rules.gateway.patches import patch_targets
from rules.gateway.paths import ALWAYS_FORBIDDEN, PathRefused, forbidden, normalise, read_refusal, write_refusal
from rules.redact import contains_secret, dotenv_values, environment_secrets, redact

if TYPE_CHECKING:
    from activities.workspace.mcp_tools import McpSettings

OUTPUT_CAP = 12_000  # characters a model sees from one tool call
COMMAND_TIMEOUT_CAP = 600
COMMAND_OUTPUT_LIMIT = 4 * 1024 * 1024  # bytes a command may print before it is killed
_KEEP_BYTES = 128 * 1024  # of a long output, this much of its start and of its end is kept for redaction
READ_LIMIT = 2 * 1024 * 1024  # bytes read_file reads of one file
SEARCH_FILE_LIMIT = 1024 * 1024  # larger files are skipped by search
SEARCH_SECONDS = 10.0
WALK_LIMIT = 100_000  # entries a listing or search visits before it stops
MAX_FILE_BYTES = 1024 * 1024 * 1024  # RLIMIT_FSIZE for commands
EXTRA_PROCESSES = 512  # RLIMIT_NPROC headroom for commands
# Environment handed to agent commands: enough to run tests, nothing that could be exfiltrated.
_SAFE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "JAVA_HOME",
             "GOROOT", "CARGO_HOME", "RUSTUP_HOME")
_SECRET_TEXT_LIMIT = 64 * 1024
_GIT_ATTRIBUTES = ".spec2ship-gitattributes"


class ToolFailed(Exception):
    """The tool ran and failed in a way the agent can react to (bad patch, missing file)."""


class ToolDenied(PathRefused):
    """The workspace itself refused the call (symbolic link, glob onto a secret): nothing was executed."""


TOOL_SPECS: dict[str, ToolSpec] = {
    "list_files": ToolSpec(
        name="list_files",
        description="List files under a folder of the repository (recursively, at most 500).",
        parameters={"type": "object", "properties": {"path": {"type": "string", "default": "."}}},
    ),
    "read_file": ToolSpec(
        name="read_file",
        description="Read a text file of the repository, optionally a line range.",
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    ),
    "search": ToolSpec(
        name="search",
        description="Search the repository for a regular expression; returns file:line: text matches.",
        parameters={
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "path": {"type": "string", "default": "."}},
            "required": ["pattern"],
        },
    ),
    "write_file": ToolSpec(
        name="write_file",
        description="Create or overwrite a file with the given content.",
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    ),
    "apply_patch": ToolSpec(
        name="apply_patch",
        description="Apply a unified diff (as produced by `git diff`) to the repository.",
        parameters={"type": "object", "properties": {"patch": {"type": "string"}}, "required": ["patch"]},
    ),
    "run_command": ToolSpec(
        name="run_command",
        description=(
            "Run a shell command in the repository root, sandboxed: no network, no variables or command "
            "substitution, no inline interpreter code (write a script file and run it). Returns exit code and output."
        ),
        parameters={
            "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "integer", "default": 120}},
            "required": ["command"],
        },
    ),
    "submit_review": ToolSpec(
        name="submit_review",
        description="Finish the review: verdict approve or request_changes, with located comments.",
        parameters={
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
                "summary": {"type": "string"},
                "comments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "line": {"type": "integer"},
                            "body": {"type": "string"},
                        },
                        "required": ["body"],
                    },
                },
            },
            "required": ["verdict"],
        },
    ),
    "submit_judgement": ToolSpec(
        name="submit_judgement",
        description="Judge each criterion against the evidence: pass or fail, with the reason.",
        parameters={
            "type": "object",
            "properties": {
                "judgements": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "verdict": {"type": "string", "enum": ["pass", "fail"]},
                            "reason": {"type": "string"},
                        },
                        "required": ["id", "verdict", "reason"],
                    },
                }
            },
            "required": ["judgements"],
        },
    ),
}


def _cap(text: str, cap: int = OUTPUT_CAP) -> tuple[str, bool]:
    if len(text) <= cap:
        return text, False
    return text[: cap // 2] + f"\n... [{len(text) - cap} characters cut] ...\n" + text[-cap // 2 :], True


@dataclass
class _Secrets:
    """The secret files of a workspace (and its git internals), found in one walk."""

    files: list[str] = field(default_factory=list)  # workspace-relative
    dirs: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # every symbolic link: where it points
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # every file: size, modification time


@dataclass
class _Snapshot:
    dirty: dict[str, str]  # out-of-scope paths already changed before the command: content digest
    secrets: dict[str, bytes | None]  # secret files: their bytes (None: a link or unreadable)
    secret_dirs: list[str]  # folders that are secret as a whole (.ssh, .aws)
    git: dict[str, bytes]  # git configuration, hooks, info: absolute path -> bytes
    links: dict[str, str]  # symbolic links anywhere in the workspace (ignored folders too)
    stats: dict[str, tuple[int, int]]  # every file's size and modification time


@dataclass
class _Output:
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = _KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - _KEEP_BYTES)]

    def text(self) -> str:
        middle = len(self.head) + len(self.tail) < self.total
        cut = f"\n... [{self.total - len(self.head) - len(self.tail)} bytes cut] ...\n" if middle else ""
        return self.head.decode(errors="replace") + cut + self.tail.decode(errors="replace")


class Workspace:
    """A working copy and the tools that act in it."""

    def __init__(self, root: Path, confinement: Confinement | str | None = None) -> None:
        self.root = root.resolve()
        self._confinement = confinement
        self._secrets: _Secrets | None = None

    @property
    def confinement(self) -> Confinement:
        """How commands run here: resolved lazily, so listing files never probes for bubblewrap."""
        if not isinstance(self._confinement, Confinement):
            self._confinement = choose(self._confinement)
        return self._confinement

    # --- paths -------------------------------------------------------------------------------

    def _real(self, relative: str) -> tuple[Path, str]:
        """The real file behind a workspace path, and its real workspace-relative path.

        Symbolic links are followed (an agent's script may have made them); a path whose real location
        is outside the workspace or under a forbidden path is refused, whatever its own name says.
        """
        target = self.root / normalise(relative)
        resolved = target.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolDenied(f"{relative!r} resolves outside the repository (symbolic link?)")
        real = resolved.relative_to(self.root).as_posix() if resolved != self.root else ""
        return resolved, real

    def _readable(self, relative: str) -> Path:
        resolved, real = self._real(relative)
        refusal = read_refusal(real) if real else None
        if refusal:
            raise ToolDenied(f"{relative!r} is a link to a file agents may not read: {refusal}")
        return resolved

    def secrets(self) -> _Secrets:
        """Secret files (always-forbidden paths, git excluded) and the values to redact everywhere."""
        if self._secrets is not None:
            return self._secrets
        found = _Secrets(values=environment_secrets(os.environ))
        visited = 0
        for folder, dirs, files in os.walk(self.root):
            relative_folder = os.path.relpath(folder, self.root)
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
                    found.values += _secret_values(Path(folder) / name)
            visited += len(files) + len(dirs)
            if visited > WALK_LIMIT:
                break
        self._secrets = found
        return found

    def known_secrets(self) -> list[str]:
        """Values from the workspace's secret files and the worker's credentials: redacted in every output."""
        return self.secrets().values

    # --- tools -------------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        base = self._readable(normalise(path) or ".")
        if not base.exists():
            raise ToolFailed(f"no such folder: {path}")
        found: list[str] = []
        for relative in self._walk(base):
            found.append(relative)
            if len(found) >= 500:
                found.append("... (more files not listed)")
                break
        return "\n".join(found) or "(no files)"

    def _walk(self, base: Path) -> list[str]:
        """Workspace-relative files under `base`, secrets and git internals left out, links not followed."""
        if base.is_file():
            return [base.relative_to(self.root).as_posix()]
        out: list[str] = []
        visited = 0
        for folder, dirs, files in os.walk(base):
            prefix = Path(folder).relative_to(self.root).as_posix()
            prefix = "" if prefix == "." else prefix + "/"
            dirs[:] = sorted(d for d in dirs if not forbidden(prefix + d) and not forbidden(prefix + d + "/x"))
            for name in sorted(files):
                if not forbidden(prefix + name):
                    out.append(prefix + name)
            visited += len(files) + len(dirs)
            if visited > WALK_LIMIT:
                break
        return out

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        target = self._readable(path)
        if not target.is_file():
            raise ToolFailed(f"no such file: {path}")
        with target.open("rb") as handle:
            data = handle.read(READ_LIMIT + 1)
        if b"\x00" in data[:8192]:
            return f"(binary file, {target.stat().st_size:,} bytes; not shown)"
        note = ""
        if len(data) > READ_LIMIT:
            data = data[:READ_LIMIT]
            note = f"\n[only the first {READ_LIMIT:,} bytes were read]"
        lines = data.decode(errors="replace").splitlines(keepends=True)
        first = max(1, start_line or 1)
        last = min(len(lines), end_line or len(lines))
        return "".join(lines[first - 1 : last]) + note

    def search(self, pattern: str, path: str = ".") -> str:
        try:
            compiled = regex.compile(pattern)
        except regex.error as error:
            raise ToolFailed(f"invalid regular expression {pattern!r}: {error}") from error
        base = self._readable(normalise(path) or ".")
        deadline = time.monotonic() + SEARCH_SECONDS
        hits: list[str] = []
        for relative in self._walk(base):
            candidate = self.root / relative
            if candidate.is_symlink() or not candidate.is_file():
                continue
            try:
                if candidate.stat().st_size > SEARCH_FILE_LIMIT:
                    continue
                text = candidate.read_text(errors="strict")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                remaining = deadline - time.monotonic()
                try:
                    found = remaining > 0 and compiled.search(line, timeout=remaining)
                except TimeoutError:
                    found = False
                if remaining <= 0 or time.monotonic() >= deadline:
                    hits.append(f"... (search stopped after {SEARCH_SECONDS:.0f}s; narrow the pattern or the path)")
                    return "\n".join(hits)
                if found:
                    hits.append(f"{relative}:{number}: {line.strip()[:200]}")
                    if len(hits) >= 200:
                        return "\n".join([*hits, "... (more matches not shown)"])
        return "\n".join(hits) or "(no matches)"

    def write_file(self, path: str, content: str, grant: ToolGrant | None = None) -> str:
        relative = normalise(path)
        target = self.root / relative
        if target.is_symlink():
            raise ToolDenied(f"{relative!r} is a symbolic link; agents write regular files only")
        resolved, real = self._real(relative)
        refusal = write_refusal(real, grant.constraints) if grant else (read_refusal(real) if real else None)
        if refusal:
            raise ToolDenied(refusal)
        if any(secret in content for secret in self.known_secrets() if len(secret) >= 4):
            raise ToolDenied("the content contains a secret value from this workspace; it is not written")
        resolved.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(resolved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        return f"wrote {relative} ({len(content.splitlines())} lines)"

    def apply_patch(self, patch: str, grant: ToolGrant | None = None) -> tuple[str, list[str]]:
        if not patch.endswith("\n"):
            patch += "\n"
        for name in self._patch_names(patch):
            target = self.root / name
            if target.is_symlink():
                raise ToolDenied(f"the patch changes {name!r}, which is a symbolic link")
            _, real = self._real(name)
            refusal = write_refusal(real, grant.constraints) if grant else None
            if refusal:
                raise ToolDenied(refusal)
        if any(secret in patch for secret in self.known_secrets() if len(secret) >= 4):
            raise ToolDenied("the patch contains a secret value from this workspace; it is not applied")
        check = self._git(["apply", "--check", "--whitespace=nowarn", "-"], patch)
        if check.returncode != 0:
            # Idempotent under retry: a patch that is already applied reverses cleanly.
            if self._git(["apply", "--check", "--reverse", "-"], patch).returncode == 0:
                return "patch already applied", []
            raise ToolFailed(f"patch does not apply: {check.stderr.strip() or check.stdout.strip()}")
        before = self.snapshot(grant) if grant else None
        applied = self._git(["apply", "--whitespace=nowarn", "-"], patch)
        if applied.returncode != 0:
            raise ToolFailed(f"patch does not apply: {applied.stderr.strip()}")
        reverted = self.undo(before, grant) if before is not None and grant else []
        stat = self._git(["apply", "--stat", "-"], patch)
        return f"patch applied\n{stat.stdout.strip()}", reverted

    def _patch_names(self, patch: str) -> list[str]:
        """The names git itself will touch (`git apply --numstat -z`), with the gateway's reading added."""
        names = list(patch_targets(patch))
        listed = self._git(["apply", "--numstat", "-z", "-"], patch)
        if listed.returncode == 0:
            fields = listed.stdout.split("\0")
            index = 0
            while index < len(fields):
                entry = fields[index]
                if not entry:
                    index += 1
                    continue
                parts = entry.split("\t")
                if len(parts) == 3 and parts[2] == "" and index + 2 < len(fields):  # a rename: old\0new\0
                    names += [fields[index + 1], fields[index + 2]]
                    index += 3
                    continue
                if len(parts) == 3:
                    names.append(parts[2])
                index += 1
        summary = self._git(["apply", "--summary", "-"], patch).stdout
        if " 120000 " in f" {summary} " or "=> 120000" in summary or " 160000 " in f" {summary} ":
            raise ToolDenied("the patch creates a symbolic link or a submodule; agents may only change regular files")
        out: list[str] = []
        for name in names:
            normalised = normalise(name)
            if normalised not in out:
                out.append(normalised)
        return out

    def run_command(self, command: str, grant: ToolGrant, timeout: float = 120) -> tuple[str, int, list[str]]:
        self._check_command_paths(command, grant)
        confinement = self.confinement
        secrets = self.secrets()
        before = self.snapshot(grant)
        marker = uuid.uuid4().hex
        scratch = Path(tempfile.mkdtemp(prefix="spec2ship-cmd-"))
        try:
            argv, env = self._command_argv(command, confinement, secrets, scratch, marker)
            output, code, notes = _run_bounded(argv, env, self.root, min(timeout, COMMAND_TIMEOUT_CAP), marker)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._secrets = None  # the command may have written new secret files: look again
        reverted = self.undo(before, grant)
        text = output + "".join(f"\n[{note}]" for note in notes)
        if reverted:
            text += ("\n[refused: the command changed files it may not change; reverted: " + ", ".join(reverted)
                     + "]")
            code = code or 126
        header = f"$ {command}\n[exit {code}; {confinement.value} confinement]\n"
        return header + text, code, reverted

    # --- run_command helpers -----------------------------------------------------------------

    def _check_command_paths(self, command: str, grant: ToolGrant) -> None:
        """What only the file system can tell: where globs expand, where existing links point."""
        checked = check_command(command, grant)
        if checked.refusal:
            raise ToolDenied(checked.refusal)
        import glob as globbing

        for pattern in checked.globs:
            for match in sorted(globbing.glob(pattern, root_dir=self.root))[:10_000]:
                relative = normalise(match)
                refusal = read_refusal(relative)
                if refusal:
                    raise ToolDenied(f"the pattern {pattern!r} expands to {relative!r}: {refusal}")
                if (self.root / relative).is_symlink():
                    self._readable(relative)
        for path in checked.paths:
            candidate = self.root / path
            if candidate.exists() or candidate.is_symlink():
                self._readable(path)

    def _command_argv(self, command: str, confinement: Confinement, secrets: _Secrets, scratch: Path, marker: str
                      ) -> tuple[list[str], dict[str, str]]:
        env = {name: os.environ[name] for name in _SAFE_ENV if name in os.environ}
        # No bytecode or test caches: outside the writable paths they would be reverted every time.
        env.update({"SPEC2SHIP_AGENT": "1", MARKER: marker, "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTEST_ADDOPTS": "-p no:cacheprovider"})
        shell = ["/bin/sh", "-c", command]
        (scratch / _GIT_ATTRIBUTES).write_text(git_secret_attributes())
        inside = "/tmp" if confinement is Confinement.bubblewrap else str(scratch)
        # Every git the command runs treats secret files as binary: log -p, show, diff and grep print
        # "Binary files differ" instead of a committed secret.
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.attributesFile",
                    "GIT_CONFIG_VALUE_0": f"{inside}/{_GIT_ATTRIBUTES}"})
        if confinement is Confinement.bubblewrap:
            env.update({"HOME": "/tmp", "TMPDIR": "/tmp", "XDG_CONFIG_HOME": "/tmp/.config"})
            mounts = SandboxMounts(
                workspace=self.root, tmp=scratch,
                hidden_files=[self.root / name for name in secrets.files],
                hidden_dirs=[self.root / name for name in secrets.dirs],
                read_only=self.git_paths(),
            )
            argv = bwrap_argv(mounts, env, shell)
        else:
            env.update({"HOME": str(scratch), "TMPDIR": str(scratch), "XDG_CONFIG_HOME": str(scratch / ".config")})
            argv = shell
        return with_limits(argv, MAX_FILE_BYTES, EXTRA_PROCESSES), env

    def git_paths(self) -> list[Path]:
        """The `.git` entry of the workspace, its git folder and the repository's common folder."""
        entry = self.root / ".git"
        paths = [entry] if entry.exists() else []
        gitdir = entry
        if entry.is_file():
            text = entry.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                gitdir = (self.root / text.split(":", 1)[1].strip()).resolve()
                paths.append(gitdir)
        common_file = gitdir / "commondir"
        if common_file.is_file():
            paths.append((gitdir / common_file.read_text().strip()).resolve())
        return paths

    def _protected_git_files(self) -> dict[str, bytes]:
        """Git configuration, hooks and info of the workspace's repository: code the worker would run."""
        found: dict[str, bytes] = {}
        for path in self.git_paths():
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

    def snapshot(self, grant: ToolGrant) -> _Snapshot:
        dirty = {path: _digest(self.root / path) for path in self._changed_files()
                 if write_refusal(path, grant.constraints)}
        secrets: dict[str, bytes | None] = {}
        for relative in self.secrets().files:
            candidate = self.root / relative
            secrets[relative] = None if candidate.is_symlink() else _read_bytes(candidate)
        tree = self.secrets()
        return _Snapshot(dirty=dirty, secrets=secrets, secret_dirs=list(tree.dirs), git=self._protected_git_files(),
                         links=dict(tree.links), stats=dict(tree.stats))

    def undo(self, before: _Snapshot, grant: ToolGrant) -> list[str]:
        """Put back what the command may not change; return what was reverted (workspace-relative)."""
        reverted: list[str] = []
        now_git = self._protected_git_files()
        for path, data in before.git.items():
            if now_git.get(path) != data:
                target = Path(path)
                if target.is_symlink() or target.is_dir():
                    _remove(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                reverted.append(_git_label(path, self.root))
        for path in now_git.keys() - before.git.keys():
            _remove(Path(path))
            reverted.append(_git_label(path, self.root))
        self._secrets = None
        current = self.secrets()
        for relative, saved in before.secrets.items():
            candidate = self.root / relative
            now = None if candidate.is_symlink() else _read_bytes(candidate)
            if saved is not None and (now != saved or candidate.is_symlink()):
                _remove(candidate)
                candidate.parent.mkdir(parents=True, exist_ok=True)
                candidate.write_bytes(saved)
                reverted.append(relative)
        for relative in current.dirs:
            if relative not in before.secret_dirs:
                _remove(self.root / relative)
                reverted.append(relative)
        for relative in current.files:
            new_dir = any(relative.startswith(d + "/") for d in current.dirs if d not in before.secret_dirs)
            if relative not in before.secrets and not new_dir:
                _remove(self.root / relative)
                reverted.append(relative)
        for relative, pointee in current.links.items():  # new links, also in ignored folders
            candidate = self.root / relative
            if before.links.get(relative) != pointee and self._bad_link(candidate):
                _remove(candidate)
                reverted.append(relative)
        values = [value for value in current.values if len(value) >= 4]
        for relative, stats in current.stats.items():  # copies of secrets, also in ignored folders
            if before.stats.get(relative) != stats and relative not in reverted and not forbidden(relative):
                candidate = self.root / relative
                if _holds_secret(candidate, values):
                    self._restore_or_remove(relative)
                    reverted.append(relative)
        for _ in range(3):  # a reverted .gitignore can reveal files it hid: look again
            found = self._revert_out_of_scope(before, grant)
            if not found:
                break
            reverted += found
        self._secrets = None
        return sorted(set(reverted))

    def _restore_or_remove(self, path: str) -> None:
        """Put a file back as the branch has it, or remove it when the branch does not have it."""
        candidate = self.root / path
        if self._git(["cat-file", "-e", f"HEAD:{path}"]).returncode == 0:
            _remove(candidate)
            self._git(["restore", "--source=HEAD", "--staged", "--worktree", "--", path])
        else:
            self._git(["rm", "-q", "--cached", "--ignore-unmatch", "--", path])
            _remove(candidate)

    def _revert_out_of_scope(self, before: _Snapshot, grant: ToolGrant) -> list[str]:
        reverted: list[str] = []
        self._secrets = None
        tree = self.secrets()
        values = [value for value in tree.values if len(value) >= 4]
        for path in sorted(self._changed_files()):
            candidate = self.root / path
            if forbidden(path) and not path.startswith(".git"):
                continue  # secret files were put back byte for byte already
            if path in before.stats and tree.stats.get(path) == before.stats[path]:
                continue  # not touched by this command (an ignore rule that changed made it visible)
            refusal = write_refusal(path, grant.constraints)
            if refusal and path in before.dirty and before.dirty[path] == _digest(candidate):
                continue
            if not refusal:
                refusal = self._bad_link(candidate) or _holds_secret(candidate, values)
            if not refusal:
                continue
            self._restore_or_remove(path)
            reverted.append(path)
        return reverted

    def _bad_link(self, candidate: Path) -> str | None:
        if not candidate.is_symlink():
            return None
        resolved = candidate.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            return "a symbolic link out of the repository"
        real = resolved.relative_to(self.root).as_posix() if resolved != self.root else ""
        return "a symbolic link to a secret" if real and forbidden(real) else None

    # --- helpers ---------------------------------------------------------------------------

    def _git(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """git with every configuration source that could run code switched off."""
        home = Path(tempfile.gettempdir()) / "spec2ship-git-home"
        home.mkdir(exist_ok=True)
        env = {**{k: v for k, v in os.environ.items() if k in _SAFE_ENV}, "HOME": str(home),
               "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "GIT_TERMINAL_PROMPT": "0"}
        safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.pager=cat",
                "-c", "diff.external=", "-c", "core.sshCommand=false"]
        return subprocess.run(
            ["git", *safe, *args], cwd=self.root, input=stdin, capture_output=True, text=True, check=False,
            timeout=120, env=env,
        )

    def _changed_files(self) -> set[str]:
        status = self._git(["status", "--porcelain", "-z", "--untracked-files=all", "--no-renames"])
        entries = [entry for entry in status.stdout.split("\0") if entry]
        return {entry[3:] for entry in entries if len(entry) > 3}


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


def _secret_values(path: Path) -> list[str]:
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


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    data = _read_bytes(path)
    return hashlib.sha256(data).hexdigest() if data is not None else "absent"


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _holds_secret(path: Path, values: list[str]) -> str | None:
    if not values or path.is_symlink() or not path.is_file() or path.stat().st_size > 16 * 1024 * 1024:
        return None
    data = _read_bytes(path) or b""
    return "a copy of a secret value" if any(value.encode() in data for value in values) else None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _git_label(path: str, root: Path) -> str:
    with contextlib.suppress(ValueError):
        return Path(path).relative_to(root).as_posix()
    return f"<git>/{Path(path).name}" if Path(path).parent.name not in {"hooks", "info"} else (
        f"<git>/{Path(path).parent.name}/{Path(path).name}")


def _run_bounded(argv: list[str], env: dict[str, str], cwd: Path, timeout: float, marker: str
                 ) -> tuple[str, int, list[str]]:
    """Run `argv`, keeping a bounded part of its output; kill it and everything it started when done."""
    notes: list[str] = []
    output = _Output()
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = started + timeout
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                notes.append(f"timed out after {timeout:.0f}s; the command and everything it started were killed")
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                notes.append("background processes still held the output after the command ended; killed")
                break
            events = selector.select(timeout=min(0.25, deadline - now))
            if not events:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            output.add(chunk)
            if output.total > COMMAND_OUTPUT_LIMIT:
                notes.append(f"the output passed {COMMAND_OUTPUT_LIMIT:,} bytes; the command was killed")
                break
    finally:
        selector.close()
        _kill_group(process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        process.stdout.close()
        killed = kill_marked(marker)
        if killed:
            notes.append(f"{killed} process(es) the command left behind were killed")
    code = process.returncode if process.returncode is not None else -9
    if notes and notes[0].startswith(("timed out", "the output passed")):
        code = -1 if code == 0 else code
    return output.text(), code, notes


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def execute(workspace: Workspace, call: ToolCall, grant: ToolGrant, mcp: McpSettings | None = None) -> ToolResult:
    """Run one governed tool call; never raises for the agent's mistakes, only reports them."""
    started = time.monotonic()
    verdict = check_call(call, grant)
    if not verdict.allowed:
        return ToolResult(call_id=call.id, tool=call.name, status=ToolStatus.denied, output=f"denied: {verdict.reason}")
    args: dict[str, Any] = call.arguments
    status = ToolStatus.ok
    reverted: list[str] = []
    try:
        if call.name.startswith(MCP_PREFIX):
            from activities.workspace.mcp_tools import McpFailed, execute_mcp

            try:
                outcome = execute_mcp(workspace, call, grant, mcp)
            except McpFailed as error:
                raise ToolFailed(str(error)) from error
            output, reverted = outcome.text, outcome.reverted
            status = ToolStatus.error if outcome.failed else ToolStatus.ok
        elif call.name == "list_files":
            output = workspace.list_files(str(args.get("path") or "."))
        elif call.name == "read_file":
            output = workspace.read_file(str(args["path"]), _int(args.get("start_line")), _int(args.get("end_line")))
        elif call.name == "search":
            output = workspace.search(str(args.get("pattern", "")), str(args.get("path") or "."))
        elif call.name == "write_file":
            output = workspace.write_file(str(args["path"]), str(args.get("content", "")), grant)
        elif call.name == "apply_patch":
            output, reverted = workspace.apply_patch(str(args["patch"]), grant)
        elif call.name == "run_command":
            seconds = min(float(_int(args.get("timeout")) or 120), float(grant.max_command_seconds))
            output, code, reverted = workspace.run_command(str(args["command"]), grant, seconds)
            status = ToolStatus.ok if code == 0 else ToolStatus.error
        else:
            raise ToolFailed(f"tool {call.name!r} does not run in the workspace")
    except (PathRefused, SandboxUnavailable) as refused:  # a rule said no before anything ran
        status = ToolStatus.denied
        output = f"denied: {refused}"
    except (ToolFailed, KeyError, ValueError, OSError, subprocess.SubprocessError) as error:
        status = ToolStatus.error
        output = f"error: {error}"
    redacted, _ = redact(output, workspace.known_secrets())
    capped, truncated = _cap(redacted)
    return ToolResult(
        call_id=call.id, tool=call.name, status=status, output=capped, truncated=truncated,
        duration_s=round(time.monotonic() - started, 3), reverted=reverted,
    )


def _int(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as error:
        raise ToolFailed(f"expected an integer, got {value!r}") from error


def secret_free(text: str, workspace: Workspace) -> bool:
    """Whether `text` holds none of the workspace's secrets nor a credential shape (tests and audits use it)."""
    return not contains_secret(text, workspace.known_secrets())
