"""The workspace and the file and command tools agents call in it: list_files, read_file, search,
write_file, apply_patch, run_command (MCP tools: mcp_tools.py; one call's dispatch: dispatch.py).

Each tool re-checks the gateway's verdict (defence in depth: the workflow already checked), works only
inside the workspace and never through a symbolic link that leaves it or lands on a secret, bounds what
it reads and returns, and redacts secrets before anything reaches a model. run_command runs confined
(sandbox.py) where the machine allows it (process.py runs it), with a scrubbed environment and resource
limits, and what it changed outside the allowed paths is undone afterwards (snapshot.py). The whole
security model is written down in rules/gateway/__init__.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import regex

from activities.forge.gitcli import Git, GitResult
from activities.workspace.process import SAFE_ENV, run_bounded
from activities.workspace.sandbox import (
    MARKER,
    Confinement,
    SandboxMounts,
    bwrap_argv,
    choose,
    new_marker,
    with_limits,
)
from activities.workspace.secrets import WALK_LIMIT, SecretScan, git_secret_attributes, scan_secrets
from activities.workspace.snapshot import take_snapshot, undo
from contracts.workspace import ToolGrant
from rules.gateway.commands import check_command
from rules.gateway.patches import patch_targets
from rules.gateway.paths import PathRefused, forbidden, normalise, read_refusal, write_refusal
from rules.redact import contains_secret

COMMAND_TIMEOUT_CAP = 600
READ_LIMIT = 2 * 1024 * 1024  # bytes read_file reads of one file
SEARCH_FILE_LIMIT = 1024 * 1024  # larger files are skipped by search
SEARCH_SECONDS = 10.0
MAX_FILE_BYTES = 1024 * 1024 * 1024  # RLIMIT_FSIZE for commands
EXTRA_PROCESSES = 512  # RLIMIT_NPROC headroom for commands
_GIT_ATTRIBUTES = ".spec2ship-gitattributes"
# Configuration that keeps git from running code the agent could have planted (hooks, fsmonitor, pagers).
# (External diff drivers need configuration the agent cannot write; diffs also pass --no-ext-diff.)
_HARDENED_GIT = {"core.hooksPath": "/dev/null", "core.fsmonitor": "false", "core.pager": "cat",
                 "core.sshCommand": "false"}


class ToolFailed(Exception):
    """The tool ran and failed in a way the agent can react to (bad patch, missing file)."""


class ToolDenied(PathRefused):
    """The workspace itself refused the call (symbolic link, glob onto a secret): nothing was executed."""


class Workspace:
    """A working copy and the tools that act in it."""

    def __init__(self, root: Path, confinement: Confinement | str | None = None) -> None:
        self.root = root.resolve()
        self._confinement = confinement
        self._secrets: SecretScan | None = None

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

    def secrets(self) -> SecretScan:
        """Secret files and the values to redact everywhere; scanned once, until a call may have changed them."""
        if self._secrets is None:
            self._secrets = scan_secrets(self.root)
        return self._secrets

    def forget_secrets(self) -> None:
        """After a command or an undo: files may have changed, scan again on the next question."""
        self._secrets = None

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
        check = self.git(["apply", "--check", "--whitespace=nowarn", "-"], patch)
        if check.returncode != 0:
            # Idempotent under retry: a patch that is already applied reverses cleanly.
            if self.git(["apply", "--check", "--reverse", "-"], patch).returncode == 0:
                return "patch already applied", []
            raise ToolFailed(f"patch does not apply: {check.stderr.strip() or check.stdout.strip()}")
        before = take_snapshot(self, grant) if grant else None
        applied = self.git(["apply", "--whitespace=nowarn", "-"], patch)
        if applied.returncode != 0:
            raise ToolFailed(f"patch does not apply: {applied.stderr.strip()}")
        reverted = undo(self, before, grant) if before is not None and grant else []
        stat = self.git(["apply", "--stat", "-"], patch)
        return f"patch applied\n{stat.stdout.strip()}", reverted

    def _patch_names(self, patch: str) -> list[str]:
        """The names git itself will touch (`git apply --numstat -z`), with the gateway's reading added."""
        names = list(patch_targets(patch))
        listed = self.git(["apply", "--numstat", "-z", "-"], patch)
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
        summary = self.git(["apply", "--summary", "-"], patch).stdout
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
        before = take_snapshot(self, grant)
        marker = new_marker(self.root)
        scratch = Path(tempfile.mkdtemp(prefix="spec2ship-cmd-"))
        try:
            argv, env = self._command_argv(command, confinement, secrets, scratch, marker)
            output, code, notes = run_bounded(argv, env, self.root, min(timeout, COMMAND_TIMEOUT_CAP), marker)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.forget_secrets()  # the command may have written new secret files: look again
        reverted = undo(self, before, grant)
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

    def _command_argv(self, command: str, confinement: Confinement, secrets: SecretScan, scratch: Path, marker: str
                      ) -> tuple[list[str], dict[str, str]]:
        env = {name: os.environ[name] for name in SAFE_ENV if name in os.environ}
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

    # --- helpers ---------------------------------------------------------------------------

    def git(self, args: list[str], stdin: str | None = None) -> GitResult:
        """git with every configuration source that could run code switched off, and a scrubbed environment."""
        home = Path(tempfile.gettempdir()) / "spec2ship-git-home"
        home.mkdir(exist_ok=True)
        env = {**{k: v for k, v in os.environ.items() if k in SAFE_ENV}, "HOME": str(home),
               "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        return Git(self.root, config=_HARDENED_GIT, base_env=env).run(*args, input=stdin, check=False)

    def changed_files(self) -> set[str]:
        status = self.git(["status", "--porcelain", "-z", "--untracked-files=all", "--no-renames"])
        entries = [entry for entry in status.stdout.split("\0") if entry]
        return {entry[3:] for entry in entries if len(entry) > 3}


def secret_free(text: str, workspace: Workspace) -> bool:
    """Whether `text` holds none of the workspace's secrets nor a credential shape (tests and audits use it)."""
    return not contains_secret(text, workspace.known_secrets())
