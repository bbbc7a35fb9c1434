"""The run governor: whether one tool call may run (grant, paths, commands, patches, MCP arguments),
and the run's state across calls (rate limit, denials, loop detection).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts.agent_run import GovernorState, RunLimits
from contracts.agents import ToolCall
from contracts.workspace import ToolGrant
from rules.gateway.commands import command_refusal
from rules.gateway.grants import FINAL_TOOLS, MCP_PREFIX
from rules.gateway.mcp_args import mcp_verdict
from rules.gateway.patches import patch_targets
from rules.gateway.paths import PathRefused, normalise, read_refusal, write_refusal
from rules.gateway.verdict import GateVerdict

__all__ = ["MAX_CONTENT_CHARS", "GovernorState", "admit", "check_call", "repeated_call"]

MAX_CONTENT_CHARS = 1_000_000


def _str_arg(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str):
        raise PathRefused(f"argument {name!r} must be a string")
    return value


def _optional_path(arguments: dict[str, Any]) -> str:
    raw = arguments.get("path", ".")
    if raw is None:
        raw = "."
    if not isinstance(raw, str):
        raise PathRefused("argument 'path' must be a string")
    return normalise(raw)


def check_call(call: ToolCall, grant: ToolGrant) -> GateVerdict:
    """Whether `grant` lets this call run. Pure; the tool activity calls it again before acting."""
    if call.name.startswith(MCP_PREFIX):
        return mcp_verdict(call, grant)
    if call.name not in grant.tools:
        return GateVerdict(allowed=False, reason=f"tool {call.name!r} is not granted to the {grant.role} role")
    if call.name in FINAL_TOOLS:
        return GateVerdict(allowed=True)
    try:
        if call.name == "read_file":
            path = normalise(_str_arg(call.arguments, "path"))
            refusal = read_refusal(path) if path else "read_file needs a file, not the repository root"
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name in {"list_files", "search"}:
            path = _optional_path(call.arguments)
            if call.name == "search":
                pattern = _str_arg(call.arguments, "pattern")
                if len(pattern) > 1000:
                    return GateVerdict(allowed=False, reason="the search pattern is longer than 1000 characters")
            refusal = read_refusal(path) if path else None
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path or ".")
        if call.name == "write_file":
            path = normalise(_str_arg(call.arguments, "path"))
            content = call.arguments.get("content", "")
            if not isinstance(content, str):
                return GateVerdict(allowed=False, reason="argument 'content' must be a string", path=path)
            if len(content) > MAX_CONTENT_CHARS:
                return GateVerdict(allowed=False, reason=f"content is longer than {MAX_CONTENT_CHARS:,} characters")
            refusal = write_refusal(path, grant.constraints)
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name == "apply_patch":
            patch = _str_arg(call.arguments, "patch")
            if len(patch) > MAX_CONTENT_CHARS:
                return GateVerdict(allowed=False, reason=f"the patch is longer than {MAX_CONTENT_CHARS:,} characters")
            paths = patch_targets(patch)
            if not paths:
                return GateVerdict(allowed=False, reason="the patch names no file (expected a unified diff)")
            for raw in paths:
                refusal = write_refusal(normalise(raw), grant.constraints)
                if refusal:
                    return GateVerdict(allowed=False, reason=refusal, path=raw)
            return GateVerdict(allowed=True, path=",".join(paths))
        if call.name == "run_command":
            timeout = call.arguments.get("timeout")
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
                return GateVerdict(allowed=False, reason="argument 'timeout' must be a number of seconds")
            refusal = command_refusal(_str_arg(call.arguments, "command"), grant)
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
