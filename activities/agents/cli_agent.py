"""External CLI coding agents (Claude Code, Codex, aider) as one supervised subprocess.

The agent edits the workspace on its own; we only start it, watch it, and read the change it left.
It runs in its own process group so that a timeout or a cancelled activity ends the agent and
everything it spawned. It gets a small environment (not the worker's), plus the variable named by
`api_key_env` and the entry's `env`, so a CLI cannot read Temporal or forge credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from activities.agents.registry import ModelEntry, ProviderKind
from activities.forge.gitcli import Git

Heartbeat = Callable[..., None]
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TMPDIR", "SHELL", "TZ")
_TAIL_LINES = 60
_CHUNK = 4096


class CliAgentError(RuntimeError):
    """The agent could not be started, or the workspace is not a git repository."""


class CliAgentResult(BaseModel):
    exit_code: int = Field(description="The command's exit status; negative: killed by that signal.")
    diff: str = Field(description="`git diff` of the workspace against the commit it started from, new files included.")
    log_tail: str = Field(description="The last lines of the agent's combined stdout/stderr.")
    duration_s: float
    timed_out: bool = False
    log_path: str | None = Field(default=None, description="Where the full output was streamed.")


class CliAgent:
    """Runs one CLI agent command template from the registry in a workspace."""

    def __init__(
        self,
        entry: ModelEntry,
        *,
        heartbeat_interval_s: float = 10.0,
        kill_grace_s: float = 5.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if entry.provider is not ProviderKind.cli or not entry.command:
            raise CliAgentError(f"model {entry.name!r} is not a `cli` model with a command template")
        self.entry = entry
        self.heartbeat_interval_s = heartbeat_interval_s
        self.kill_grace_s = kill_grace_s
        self._env = env if env is not None else os.environ

    def argv(self, *, prompt: str, prompt_file: Path, workspace: Path) -> list[str]:
        """The command, split like a shell would but never run by one, with placeholders filled per argument."""
        assert self.entry.command is not None
        values = {"{prompt_file}": str(prompt_file), "{workspace}": str(workspace), "{prompt}": prompt}
        out = []
        for arg in shlex.split(self.entry.command):
            for placeholder, value in values.items():
                arg = arg.replace(placeholder, value)
            out.append(arg)
        return out

    def environment(self) -> dict[str, str]:
        env = {name: self._env[name] for name in PASSED_ENV if name in self._env}
        if self.entry.api_key_env and self.entry.api_key_env in self._env:
            env[self.entry.api_key_env] = self._env[self.entry.api_key_env]
        env.update(self.entry.env)
        return env

    async def run(
        self,
        *,
        workspace: Path,
        prompt: str,
        heartbeat: Heartbeat | None = None,
        log_path: Path | None = None,
        timeout_s: float | None = None,
    ) -> CliAgentResult:
        """Run to completion or timeout and return the change; on cancellation kill the group and re-raise."""
        workspace = workspace.resolve()
        base = await _git(workspace, "rev-parse", "HEAD")
        timeout = timeout_s if timeout_s is not None else self.entry.timeout_s
        with tempfile.TemporaryDirectory(prefix="spec2ship-cli-") as scratch:
            # The prompt file lives outside the workspace so it never shows up in the diff.
            prompt_file = Path(scratch) / "prompt.md"
            prompt_file.write_text(prompt, encoding="utf-8")
            log_file = log_path or Path(scratch) / "agent.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            argv = self.argv(prompt=prompt, prompt_file=prompt_file, workspace=workspace)
            started = time.monotonic()
            exit_code, timed_out, tail = await self._supervise(argv, workspace, prompt_file, log_file, heartbeat,
                                                               timeout)
            duration = time.monotonic() - started
        diff = await workspace_diff(workspace, base.strip())
        return CliAgentResult(
            exit_code=exit_code, diff=diff, log_tail="".join(tail), duration_s=duration, timed_out=timed_out,
            log_path=str(log_path) if log_path else None,
        )

    async def _supervise(
        self, argv: list[str], workspace: Path, prompt_file: Path, log_file: Path, heartbeat: Heartbeat | None,
        timeout: float,
    ) -> tuple[int, bool, deque[str]]:
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        try:
            with prompt_file.open("rb") as stdin:
                process = await asyncio.create_subprocess_exec(
                    *argv, cwd=workspace, stdin=stdin, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, env=self.environment(), start_new_session=True,
                )
        except FileNotFoundError as err:
            raise CliAgentError(
                f"model {self.entry.name!r}: command {argv[0]!r} not found on this worker's PATH; install it or "
                "fix the model's `command` in spec2ship.yaml"
            ) from err
        except OSError as err:
            raise CliAgentError(
                f"model {self.entry.name!r}: cannot start {argv[0]!r}: {err}; a very long prompt passed as "
                "{prompt} can exceed the argument limit: use {prompt_file} or read the prompt from stdin"
            ) from err
        started = time.monotonic()
        progress: dict[str, Any] = {"log_bytes": 0}
        with log_file.open("ab") as log:
            pump = asyncio.create_task(_pump(process, log, tail, progress))
            beat = asyncio.create_task(self._beat(heartbeat, started, progress, tail)) if heartbeat else None
            timed_out = False
            try:
                try:
                    async with asyncio.timeout(timeout):
                        await asyncio.shield(pump)
                        await process.wait()
                except TimeoutError:
                    timed_out = True
                    await self._kill_group(process)
            except asyncio.CancelledError:
                await asyncio.shield(self._kill_group(process))
                raise
            finally:
                if beat is not None:
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(pump, timeout=self.kill_grace_s)
        code = process.returncode if process.returncode is not None else -int(signal.SIGKILL)
        if timed_out:
            tail.append(f"\n[spec2ship] killed after the {timeout:g}s timeout\n")
        return code, timed_out, tail

    async def _beat(self, heartbeat: Heartbeat, started: float, progress: dict[str, Any], tail: deque[str]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            last = next((line for line in reversed(tail) if line.strip()), "")
            heartbeat({"elapsed_s": round(time.monotonic() - started, 1), "log_bytes": progress["log_bytes"],
                       "last_line": last.strip()[:200]})

    async def _kill_group(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=self.kill_grace_s)
        # Children may outlive the leader: the group is killed either way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def _pump(process: asyncio.subprocess.Process, log: Any, tail: deque[str], progress: dict[str, Any]) -> None:
    assert process.stdout is not None
    pending = ""
    while chunk := await process.stdout.read(_CHUNK):
        log.write(chunk)
        log.flush()
        progress["log_bytes"] += len(chunk)
        pending += chunk.decode("utf-8", errors="replace")
        *lines, pending = pending.split("\n")
        tail.extend(line + "\n" for line in lines)
    if pending:
        tail.append(pending)


async def workspace_diff(workspace: Path, base: str) -> str:
    """Everything the agent changed since `base`: commits, staged, unstaged and new (non-ignored) files."""
    await _git(workspace, "add", "--intent-to-add", "--all")
    return await _git(workspace, "diff", "--binary", base)


async def _git(workspace: Path, *args: str) -> str:
    result = await asyncio.to_thread(Git(workspace).run, *args, check=False)
    if not result.ok:
        raise CliAgentError(
            f"git {' '.join(args)} failed in {workspace} (exit {result.returncode}): "
            f"{result.stderr.strip()}; the workspace must be a git repository with a commit"
        )
    return result.stdout
