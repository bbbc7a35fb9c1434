"""One governed tool call, end to end: the gateway's verdict again, the tool (workspace or MCP), then
redaction and the cap on what the model sees. Never raises for the agent's mistakes, only reports them."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from activities.workspace.mcp_tools import McpFailed, McpSettings, execute_mcp
from activities.workspace.sandbox import SandboxUnavailable
from activities.workspace.tools import ToolFailed, Workspace
from contracts.agents import ToolCall
from contracts.workspace import ToolGrant, ToolResult, ToolStatus
from rules.gateway.governor import check_call
from rules.gateway.grants import MCP_PREFIX
from rules.gateway.paths import PathRefused
from rules.redact import redact

OUTPUT_CAP = 12_000  # characters a model sees from one tool call


def _cap(text: str, cap: int = OUTPUT_CAP) -> tuple[str, bool]:
    if len(text) <= cap:
        return text, False
    return text[: cap // 2] + f"\n... [{len(text) - cap} characters cut] ...\n" + text[-cap // 2 :], True


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
