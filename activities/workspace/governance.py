"""The tool gateway's decisions: which tool call an agent may make, and when a run must stop.

Everything here is pure and deterministic, so the AgentRun workflow can call it directly (no I/O, time
comes in as an argument) and the tool activity can check the same rules again before it acts.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from activities.agents.base import Role, ToolCall
from activities.workspace.models import ToolGrant
from activities.workspace.paths import PathRefused, normalise, read_refusal, write_refusal

READ_TOOLS = {"list_files", "read_file", "search"}
WRITE_TOOLS = {"write_file", "apply_patch"}
EXEC_TOOLS = {"run_command"}
FINAL_TOOLS = {"submit_review", "submit_judgement"}

ROLE_TOOLS: dict[Role, list[str]] = {
    Role.coder: ["list_files", "read_file", "search", "write_file", "apply_patch", "run_command"],
    Role.reviewer: ["list_files", "read_file", "search", "submit_review"],
    Role.validator: ["list_files", "read_file", "search", "submit_judgement"],
}

# Programs that move data off the machine or change who we are: refused for every role by default.
DEFAULT_COMMAND_DENY = [
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "ftp", "telnet",
    "sudo", "su", "printenv", "env", "set", "export", "nslookup", "dig", "host", "ping",
    "git push", "git remote", "git config", "git credential", "docker", "kubectl", "aws", "gcloud", "az",
    "pip install", "npm install", "npm publish", "twine", "base64",
]

_SHELL_SPLIT = re.compile(r"&&|\|\||[;|&\n]|\$\(|`")
_PATCH_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(?P<path>\S+)|^(?:rename|copy) (?:from|to) (?P<rn>\S+)", re.M)


class GateVerdict(BaseModel):
    allowed: bool
    reason: str = ""
    path: str | None = None


class RunLimits(BaseModel):
    max_steps: int = Field(default=40, gt=0)
    max_tokens: int = Field(default=400_000, gt=0)
    max_tokens_per_call: int = Field(default=4096, gt=0)
    loop_threshold: int = Field(default=3, ge=2, description="The same call this many times stops the run.")
    max_denials: int = Field(default=8, gt=0, description="A run that keeps hitting denials is stopped.")


class GovernorState(BaseModel):
    """What the gateway remembers about one run: it travels inside the AgentRun workflow."""

    digests: dict[str, int] = Field(default_factory=dict)
    denials: int = 0
    recent_calls: list[datetime] = Field(default_factory=list)


def patch_paths(patch: str) -> list[str]:
    """Every path a unified diff touches (old and new names), `/dev/null` excluded."""
    found: list[str] = []
    for match in _PATCH_PATH.finditer(patch):
        path = match.group("path") or match.group("rn")
        if path and path != "/dev/null" and path not in found:
            found.append(path)
    return found


def _command_refusal(command: str, grant: ToolGrant) -> str | None:
    if not command.strip():
        return "empty command"
    deny = DEFAULT_COMMAND_DENY + grant.command_deny
    for segment in _SHELL_SPLIT.split(command):
        try:
            words = shlex.split(segment)
        except ValueError:
            return "command could not be parsed (unbalanced quotes)"
        if not words:
            continue
        # `VAR=x prog`, `/usr/bin/prog`: look at the program actually run.
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if not words:
            continue
        program = words[0].rsplit("/", 1)[-1]
        line = " ".join([program, *words[1:]])
        for denied in deny:
            if line == denied or line.startswith(denied + " "):
                return f"command {denied!r} is not allowed for agents"
        if grant.command_allow and not any(line == a or line.startswith(a + " ") for a in grant.command_allow):
            return f"command {program!r} is not on the allow-list ({', '.join(grant.command_allow)})"
        for word in words[1:]:
            if word.startswith("-") or "=" in word:
                continue
            try:
                path = normalise(word.lstrip("<>"))
            except PathRefused as refused:
                if "/" in word:
                    return f"command argument {word!r}: {refused}"
                continue
            refusal = read_refusal(path)
            if refusal:
                return f"command argument: {refusal}"
    if re.search(r"(?:^|[^<])>{1,2}\s*(/|\.\./|~)", command):
        return "command writes outside the repository"
    return None


def _str_arg(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str):
        raise PathRefused(f"argument {name!r} must be a string")
    return value


def check_call(call: ToolCall, grant: ToolGrant) -> GateVerdict:
    """Whether `grant` lets this call run. Pure; the tool activity calls it again before acting."""
    if call.name not in grant.tools:
        return GateVerdict(allowed=False, reason=f"tool {call.name!r} is not granted to the {grant.role} role")
    if call.name in FINAL_TOOLS:
        return GateVerdict(allowed=True)
    try:
        if call.name in {"read_file"}:
            path = normalise(_str_arg(call.arguments, "path"))
            refusal = read_refusal(path)
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name in {"list_files", "search"}:
            raw = call.arguments.get("path", ".")
            path = normalise(raw if isinstance(raw, str) else ".")
            refusal = read_refusal(path) if path else None
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path or ".")
        if call.name == "write_file":
            path = normalise(_str_arg(call.arguments, "path"))
            refusal = write_refusal(path, grant.constraints)
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name == "apply_patch":
            patch = _str_arg(call.arguments, "patch")
            paths = patch_paths(patch)
            if not paths:
                return GateVerdict(allowed=False, reason="the patch names no file (expected a unified diff)")
            for raw in paths:
                refusal = write_refusal(normalise(raw), grant.constraints)
                if refusal:
                    return GateVerdict(allowed=False, reason=refusal, path=raw)
            return GateVerdict(allowed=True, path=",".join(paths))
        if call.name == "run_command":
            refusal = _command_refusal(_str_arg(call.arguments, "command"), grant)
            return GateVerdict(allowed=refusal is None, reason=refusal or "")
    except PathRefused as refused:
        return GateVerdict(allowed=False, reason=str(refused))
    return GateVerdict(allowed=False, reason=f"unknown tool {call.name!r}")


def admit(state: GovernorState, call: ToolCall, grant: ToolGrant, now: datetime) -> GateVerdict:
    """Check one call and update the run's state (rate limit, denial count). Loop detection is separate."""
    window_start = now - timedelta(minutes=1)
    state.recent_calls = [t for t in state.recent_calls if t > window_start]
    if len(state.recent_calls) >= grant.max_calls_per_minute:
        verdict = GateVerdict(
            allowed=False, reason=f"rate limit: more than {grant.max_calls_per_minute} tool calls in a minute"
        )
    else:
        verdict = check_call(call, grant)
    state.recent_calls.append(now)
    if not verdict.allowed:
        state.denials += 1
    return verdict


def repeated_call(state: GovernorState, call: ToolCall, limits: RunLimits) -> str | None:
    """Count the call; a reason to stop the run when the same call was made `loop_threshold` times."""
    digest = call.digest()
    state.digests[digest] = state.digests.get(digest, 0) + 1
    if state.digests[digest] >= limits.loop_threshold:
        return (
            f"loop detected: {call.name} was called {state.digests[digest]} times with the same arguments "
            f"(limit {limits.loop_threshold})"
        )
    return None


def default_grant(role: Role, constraints: Any) -> ToolGrant:
    return ToolGrant(role=role, tools=list(ROLE_TOOLS[role]), constraints=constraints)
