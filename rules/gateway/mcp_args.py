"""MCP tool arguments: path-shaped values and credential shapes, checked before a server sees them."""

from __future__ import annotations

import json
from typing import Any

from contracts.agents import ToolCall
from contracts.workspace import ToolGrant
from rules.gateway.grants import split_mcp_name
from rules.gateway.paths import PathRefused, normalise, read_refusal, write_refusal
from rules.gateway.verdict import GateVerdict
from rules.redact import contains_secret

MAX_MCP_ARGUMENT_CHARS = 64_000
_MCP_PATH_KEYS = {"path", "paths", "file", "files", "filename", "file_name", "filepath", "file_path", "dir", "dirs",
                  "directory", "folder", "cwd", "root", "source", "src", "input", "uri", "location", "include"}
_MCP_WRITE_KEYS = {"dest", "destination", "output", "out", "target", "new_path", "to", "write_path", "save_as"}


def mcp_verdict(call: ToolCall, grant: ToolGrant) -> GateVerdict:
    if split_mcp_name(call.name) is None:
        return GateVerdict(allowed=False, reason=f"{call.name!r} is not a valid MCP tool name (mcp__<server>__<tool>)")
    if call.name not in grant.mcp_tools:
        return GateVerdict(allowed=False, reason=f"MCP tool {call.name!r} is not granted to the {grant.role} role")
    size = len(json.dumps(call.arguments, default=str))
    if size > MAX_MCP_ARGUMENT_CHARS:
        return GateVerdict(allowed=False, reason=f"MCP arguments are {size:,} characters (limit "
                                                  f"{MAX_MCP_ARGUMENT_CHARS:,})")
    try:
        touched = _mcp_walk(call.arguments, grant, key="", depth=0)
    except PathRefused as refused:
        return GateVerdict(allowed=False, reason=f"MCP argument: {refused}")
    return GateVerdict(allowed=True, path=",".join(touched) or None)


def _looks_like_path(value: str) -> bool:
    if not value or len(value) > 4096 or any(char.isspace() for char in value):
        return False
    if value.lower().startswith("file:"):
        return True
    if "://" in value:
        return False
    return "/" in value or value.startswith((".", "~")) or read_refusal(value) is not None


def _mcp_walk(value: Any, grant: ToolGrant, key: str, depth: int) -> list[str]:
    if depth > 16:
        raise PathRefused("arguments are nested too deeply")
    touched: list[str] = []
    if isinstance(value, dict):
        for name, item in value.items():
            touched += _mcp_walk(item, grant, str(name).lower(), depth + 1)
    elif isinstance(value, list):
        for item in value:
            touched += _mcp_walk(item, grant, key, depth + 1)
    elif isinstance(value, str):
        if contains_secret(value):
            raise PathRefused(f"argument {key or 'value'!r} carries something shaped like a credential")
        if key in _MCP_PATH_KEYS or key in _MCP_WRITE_KEYS or _looks_like_path(value):
            raw = value[len("file://"):] if value.lower().startswith("file://") else value
            path = normalise(raw)
            refusal = read_refusal(path) if path else None
            if refusal:
                raise PathRefused(refusal)
            if key in _MCP_WRITE_KEYS:
                refusal = write_refusal(path, grant.constraints)
                if refusal:
                    raise PathRefused(refusal)
            touched.append(path or ".")
    return touched
