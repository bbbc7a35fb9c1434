"""MCP tools through the same gateway as the workspace tools.

The operator configures MCP servers (a stdio command, its arguments and environment) on the worker:
never in a spec or a workflow input, so no agent or issue can choose a program to start. A role's grant
names the tools it may call as `mcp__<server>__<tool>`; governance.check_call applies the grant, the rate
limit, and the path rules to every path-shaped argument before anything starts. Here the call runs:
one MCP client session over stdio per call, with the server started in the workspace, confined like a
command (sandbox.py: no network unless the server's configuration asks for it, the workspace read-only
unless `writable`, secret files hidden), under a timeout; its result is flattened to text, capped and
(by tools.execute) redacted, and whatever it changed outside the allowed paths is put back.

The `mcp` package is optional (extra `mcp`); it is imported only when an MCP tool is used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.workspace.sandbox import (
    MARKER,
    Confinement,
    SandboxMounts,
    bwrap_argv,
    kill_marked,
    new_marker,
    with_limits,
)
from activities.workspace.snapshot import take_snapshot, undo
from contracts.agents import ToolCall, ToolSpec
from contracts.workspace import ToolGrant
from rules.gateway.grants import mcp_name, split_mcp_name
from rules.redact import redact

if TYPE_CHECKING:
    from mcp import ClientSession

    from activities.workspace.tools import Workspace

_SERVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*$"
_MAX_RESULT_CHARS = 256 * 1024
_MAX_DESCRIPTION = 1000


class McpFailed(Exception):
    """An MCP server could not be started, did not answer in time, or broke the protocol."""


class McpConfigError(Exception):
    """The MCP configuration file is missing or invalid; the message names the file and the field."""


class McpServerConfig(BaseModel):
    """One MCP server, started over stdio for each call (so no state leaks between runs)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_SERVER_NAME, description="Tools are granted as mcp__<name>__<tool>.")
    command: str = Field(min_length=1, description="The program that starts the server.")
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="The server's whole environment besides PATH.")
    timeout_s: float = Field(default=60, gt=0, le=600, description="For starting, listing and one call.")
    network: bool = Field(default=False, description="Let the confined server use the network.")
    writable: bool = Field(default=False, description="Let the server write the workspace (allowed paths only).")
    confine: bool = Field(default=True, description="Run the server under bubblewrap where the worker can.")
    read_only_paths: list[str] = Field(
        default_factory=list, description="Files or folders the confined server needs (its code, its data)."
    )


class McpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: list[McpServerConfig] = Field(default_factory=list)
    grants: dict[str, list[str]] = Field(
        default_factory=dict, description="Role (coder, reviewer, validator) -> its tools, as mcp__<server>__<tool>."
    )

    def server(self, name: str) -> McpServerConfig | None:
        return next((server for server in self.servers if server.name == name), None)


def load_settings(path: Path) -> McpSettings:
    """Read `{servers: [...]}` (or `{mcp_servers: [...]}`) from a YAML file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as error:
        raise McpConfigError(f"MCP configuration {path} does not exist; fix SPEC2SHIP_MCP_CONFIG") from error
    except yaml.YAMLError as error:
        raise McpConfigError(f"{path}: not valid YAML: {error}") from error
    if isinstance(data, dict) and "mcp_servers" in data:
        data = {**{k: v for k, v in data.items() if k != "mcp_servers"}, "servers": data["mcp_servers"]}
    try:
        return McpSettings.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise McpConfigError(f"{path}: {where}: {first['msg']}") from error


def settings_from_env() -> McpSettings:
    """SPEC2SHIP_MCP_CONFIG names the worker's MCP configuration; unset means no MCP servers."""
    location = os.environ.get("SPEC2SHIP_MCP_CONFIG", "").strip()
    return load_settings(Path(location)) if location else McpSettings()


# --- running a server --------------------------------------------------------------------------


def _server_argv(server: McpServerConfig, workspace: Workspace, scratch: Path, env: dict[str, str]) -> list[str]:
    command = shutil.which(server.command, path=env.get("PATH")) or server.command
    argv = [command, *server.args]
    if server.confine and workspace.confinement is Confinement.bubblewrap:
        secrets = workspace.secrets()
        mounts = SandboxMounts(
            workspace=workspace.root, tmp=scratch, workspace_read_only=not server.writable,
            hidden_files=[workspace.root / name for name in secrets.files],
            hidden_dirs=[workspace.root / name for name in secrets.dirs],
            read_only=[*workspace.git_paths(), *(Path(path) for path in server.read_only_paths)],
            network=server.network,
        )
        inside = {**env, "HOME": "/tmp", "TMPDIR": "/tmp"}
        argv = bwrap_argv(mounts, inside, argv)
    return with_limits(argv, 256 * 1024 * 1024, 256)


@contextlib.asynccontextmanager
async def _session(server: McpServerConfig, workspace: Workspace, marker: str) -> AsyncIterator[ClientSession]:
    try:
        from mcp import ClientSession, StdioServerParameters, stdio_client
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise McpFailed("the mcp package is not installed on this worker (pip install 'spec2ship[mcp]')") from error
    import anyio

    scratch = Path(tempfile.mkdtemp(prefix="spec2ship-mcp-"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8"),
           "HOME": str(scratch), "TMPDIR": str(scratch), MARKER: marker, **server.env}
    argv = _server_argv(server, workspace, scratch, env)
    errlog = (scratch / "stderr.log").open("w")
    try:
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(workspace.root))
        with anyio.fail_after(server.timeout_s):
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                yield session
    except TimeoutError as error:
        raise McpFailed(f"MCP server {server.name!r} did not answer within {server.timeout_s:.0f}s") from error
    except McpFailed:
        raise
    except Exception as error:  # the SDK raises many kinds; the agent needs one message
        log = _tail(scratch / "stderr.log")
        raise McpFailed(f"MCP server {server.name!r} failed: {type(error).__name__}: {error}{log}") from error
    finally:
        errlog.close()
        kill_marked(marker)
        shutil.rmtree(scratch, ignore_errors=True)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").strip()
        if text:
            return "\nserver log (last lines):\n" + "\n".join(text.splitlines()[-5:])
    return ""


def _run(coro_factory: Any) -> Any:
    """Run an async MCP exchange from the synchronous tool activity (its own thread, its own loop)."""
    import anyio

    return anyio.run(coro_factory)


def _flatten(result: Any) -> tuple[str, bool]:
    """A CallToolResult as text for the model, and whether the server reported an error."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        elif kind in {"image", "audio"}:
            data = getattr(block, "data", "") or ""
            parts.append(f"[{kind}: {getattr(block, 'mimeType', None) or getattr(block, 'mime_type', '')}, "
                         f"{len(data) * 3 // 4:,} bytes; not shown]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(str(text) if text is not None else f"[binary resource {getattr(resource, 'uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'unknown'} content not shown]")
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, default=str))
    failed = bool(getattr(result, "is_error", None) or getattr(result, "isError", None))
    text = "\n".join(parts) or "(no content)"
    if len(text) > _MAX_RESULT_CHARS:
        half = _MAX_RESULT_CHARS // 2
        text = text[:half] + f"\n... [{len(text) - _MAX_RESULT_CHARS} characters cut] ...\n" + text[-half:]
    return text, failed


class McpOutcome(BaseModel):
    text: str = Field(description="The tool's answer as text, not yet redacted nor capped (tools.execute does).")
    failed: bool = False
    reverted: list[str] = Field(default_factory=list)


def execute_mcp(workspace: Workspace, call: ToolCall, grant: ToolGrant, settings: McpSettings | None = None
                ) -> McpOutcome:
    """Call one granted MCP tool: its answer as text, whether it failed, and what was put back.

    The caller (tools.execute) has checked the call with governance.check_call; the grant and the
    configured server are checked again here. Changes outside the allowed paths are reverted.
    """
    names = split_mcp_name(call.name)
    if names is None or call.name not in grant.mcp_tools:
        raise McpFailed(f"MCP tool {call.name!r} is not granted")
    server_name, tool = names
    settings = settings if settings is not None else settings_from_env()
    server = settings.server(server_name)
    if server is None:
        raise McpFailed(f"no MCP server named {server_name!r} is configured on this worker "
                        "(SPEC2SHIP_MCP_CONFIG); ask the operator to add it or remove the grant")
    marker = new_marker(workspace.root)
    before = take_snapshot(workspace, grant)

    async def call_tool() -> tuple[str, bool]:
        async with _session(server, workspace, marker) as session:
            result = await session.call_tool(tool, dict(call.arguments))
            return _flatten(result)

    try:
        text, failed = _run(call_tool)
    finally:
        reverted = undo(workspace, before, grant)
    if reverted:
        text += "\n[refused: the MCP tool changed files it may not change; reverted: " + ", ".join(reverted) + "]"
        failed = True
    return McpOutcome(text=text, failed=failed, reverted=reverted)


async def _list_tools(server: McpServerConfig, workspace: Workspace, marker: str) -> list[Any]:
    async with _session(server, workspace, marker) as session:
        return list((await session.list_tools()).tools)


def mcp_tool_specs(workspace: Workspace, grant: ToolGrant, settings: McpSettings | None = None) -> list[ToolSpec]:
    """The granted MCP tools, as the model sees them (descriptions are the server's, capped and redacted).

    A server's tool descriptions are untrusted text: they are shortened and redacted here, and the
    gateway still decides every call, whatever a description tells the model.
    """
    settings = settings if settings is not None else settings_from_env()
    wanted: dict[str, set[str]] = {}
    for name in grant.mcp_tools:
        parts = split_mcp_name(name)
        if parts:
            wanted.setdefault(parts[0], set()).add(parts[1])
    specs: list[ToolSpec] = []
    for server_name, tools in sorted(wanted.items()):
        server = settings.server(server_name)
        if server is None:
            continue
        for tool in _run(functools.partial(_list_tools, server, workspace, new_marker(workspace.root))):
            if tool.name not in tools:
                continue
            schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {"type": "object"}
            description = redact((tool.description or "")[:_MAX_DESCRIPTION], workspace.known_secrets())[0]
            specs.append(ToolSpec(name=mcp_name(server_name, tool.name),
                                  description=f"{description} (MCP tool {tool.name} of server {server_name})",
                                  parameters=dict(schema)))
    return specs
