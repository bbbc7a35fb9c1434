"""The workspace tools agents call: list_files, read_file, search, write_file, apply_patch, run_command.

Each tool re-checks the gateway's verdict (defence in depth: the workflow already checked), works only
inside the workspace, caps its output, and redacts secrets before anything reaches a model.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from activities.agents.base import ToolCall, ToolSpec
from activities.workspace.governance import check_call
from activities.workspace.models import ToolGrant, ToolResult, ToolStatus
from activities.workspace.paths import ALWAYS_FORBIDDEN, PathRefused, matches, normalise, write_refusal
from activities.workspace.redact import dotenv_values, redact

OUTPUT_CAP = 12_000
COMMAND_TIMEOUT_CAP = 600
# Environment handed to agent commands: enough to run tests, nothing that could be exfiltrated.
_SAFE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


class ToolFailed(Exception):
    """The tool ran and failed in a way the agent can react to (bad patch, missing file)."""


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
        description="Run a shell command in the repository root (no network tools); returns exit code and output.",
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


class Workspace:
    """A working copy and the tools that act in it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _resolve(self, relative: str) -> Path:
        target = (self.root / relative).resolve()
        if target != self.root and self.root not in target.parents:
            raise PathRefused(f"{relative!r} resolves outside the repository (symbolic link?)")
        return target

    def known_secrets(self) -> list[str]:
        """Values of `.env` files in the workspace: redacted wherever they appear in tool output."""
        values: list[str] = []
        for env_file in self.root.glob("**/.env*"):
            if ".git" in env_file.parts or not env_file.is_file():
                continue
            try:
                values.extend(dotenv_values(env_file.read_text(errors="replace")))
            except OSError:
                continue
        return values

    # --- tools -------------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        base = self._resolve(normalise(path) or ".")
        if not base.exists():
            raise ToolFailed(f"no such folder: {path}")
        found: list[str] = []
        for candidate in sorted(base.rglob("*")):
            relative = candidate.relative_to(self.root).as_posix()
            if candidate.is_file() and matches(relative, ALWAYS_FORBIDDEN) is None:
                found.append(relative)
            if len(found) >= 500:
                found.append("... (more files not listed)")
                break
        return "\n".join(found) or "(no files)"

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        target = self._resolve(normalise(path))
        if not target.is_file():
            raise ToolFailed(f"no such file: {path}")
        lines = target.read_text(errors="replace").splitlines(keepends=True)
        first = max(1, start_line or 1)
        last = min(len(lines), end_line or len(lines))
        return "".join(lines[first - 1 : last])

    def search(self, pattern: str, path: str = ".") -> str:
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise ToolFailed(f"invalid regular expression {pattern!r}: {error}") from error
        base = self._resolve(normalise(path) or ".")
        hits: list[str] = []
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for candidate in files:
            relative = candidate.relative_to(self.root).as_posix()
            if not candidate.is_file() or matches(relative, ALWAYS_FORBIDDEN):
                continue
            try:
                text = candidate.read_text(errors="strict")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    hits.append(f"{relative}:{number}: {line.strip()[:200]}")
                    if len(hits) >= 200:
                        return "\n".join([*hits, "... (more matches not shown)"])
        return "\n".join(hits) or "(no matches)"

    def write_file(self, path: str, content: str) -> str:
        relative = normalise(path)
        target = self._resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {relative} ({len(content.splitlines())} lines)"

    def apply_patch(self, patch: str) -> str:
        if not patch.endswith("\n"):
            patch += "\n"
        check = self._git(["apply", "--check", "--whitespace=nowarn", "-"], patch)
        if check.returncode != 0:
            # Idempotent under retry: a patch that is already applied reverses cleanly.
            if self._git(["apply", "--check", "--reverse", "-"], patch).returncode == 0:
                return "patch already applied"
            raise ToolFailed(f"patch does not apply: {check.stderr.strip() or check.stdout.strip()}")
        applied = self._git(["apply", "--whitespace=nowarn", "-"], patch)
        if applied.returncode != 0:
            raise ToolFailed(f"patch does not apply: {applied.stderr.strip()}")
        stat = self._git(["apply", "--stat", "-"], patch)
        return f"patch applied\n{stat.stdout.strip()}"

    def run_command(self, command: str, timeout: float = 120, grant: ToolGrant | None = None) -> tuple[str, int]:
        env = {name: os.environ[name] for name in _SAFE_ENV if name in os.environ}
        env["SPEC2SHIP_AGENT"] = "1"
        before = self._changed_files()
        started = time.monotonic()
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=min(timeout, COMMAND_TIMEOUT_CAP))
            code = process.returncode
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output, _ = process.communicate()
            code = -1
            output += f"\n[timed out after {timeout:.0f}s; process group killed]".encode()
        finally:
            _kill_group(process)
        text = output.decode(errors="replace")
        reverted = self._revert_out_of_scope(before, grant) if grant else []
        if reverted:
            text += "\n[refused: the command changed files outside the allowed paths; reverted: " + ", ".join(
                reverted
            ) + "]"
            code = code or 126
        return f"$ {command}\n[exit {code} after {time.monotonic() - started:.1f}s]\n{text}", code

    # --- helpers ---------------------------------------------------------------------------

    def _git(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=self.root, input=stdin, capture_output=True, text=True, check=False, timeout=120
        )

    def _changed_files(self) -> set[str]:
        status = self._git(["status", "--porcelain", "-z", "--untracked-files=all"])
        entries = [entry for entry in status.stdout.split("\0") if entry]
        return {entry[3:] for entry in entries}

    def _revert_out_of_scope(self, before: set[str], grant: ToolGrant) -> list[str]:
        """Commands cannot be confined by parsing them; what they changed outside scope is undone."""
        reverted: list[str] = []
        for path in sorted(self._changed_files() - before):
            if write_refusal(path, grant.constraints) is None:
                continue
            tracked = self._git(["ls-files", "--error-unmatch", path]).returncode == 0
            if tracked:
                self._git(["checkout", "--", path])
            else:
                (self.root / path).unlink(missing_ok=True)
            reverted.append(path)
        return reverted


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def execute(workspace: Workspace, call: ToolCall, grant: ToolGrant) -> ToolResult:
    """Run one governed tool call; never raises for the agent's mistakes, only reports them."""
    started = time.monotonic()
    verdict = check_call(call, grant)
    if not verdict.allowed:
        return ToolResult(call_id=call.id, tool=call.name, status=ToolStatus.denied, output=f"denied: {verdict.reason}")
    args: dict[str, Any] = call.arguments
    status = ToolStatus.ok
    try:
        if call.name == "list_files":
            output = workspace.list_files(str(args.get("path", ".")))
        elif call.name == "read_file":
            output = workspace.read_file(str(args["path"]), _int(args.get("start_line")), _int(args.get("end_line")))
        elif call.name == "search":
            output = workspace.search(str(args.get("pattern", "")), str(args.get("path", ".")))
        elif call.name == "write_file":
            output = workspace.write_file(str(args["path"]), str(args.get("content", "")))
        elif call.name == "apply_patch":
            output = workspace.apply_patch(str(args["patch"]))
        elif call.name == "run_command":
            output, code = workspace.run_command(
                str(args["command"]), float(_int(args.get("timeout")) or 120), grant=grant
            )
            status = ToolStatus.ok if code == 0 else ToolStatus.error
        else:
            raise ToolFailed(f"tool {call.name!r} does not run in the workspace")
    except (ToolFailed, PathRefused, KeyError, ValueError, OSError) as error:
        status = ToolStatus.error
        output = f"error: {error}"
    redacted, _ = redact(output, workspace.known_secrets())
    capped, truncated = _cap(redacted)
    return ToolResult(
        call_id=call.id, tool=call.name, status=status, output=capped, truncated=truncated,
        duration_s=round(time.monotonic() - started, 3),
    )


def _int(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as error:
        raise ToolFailed(f"expected an integer, got {value!r}") from error
