"""Which tools each agent role may call, and how MCP tools are named in grants."""

from __future__ import annotations

import re
from typing import Any

from contracts.agents import Role
from contracts.workspace import ToolGrant

READ_TOOLS = {"list_files", "read_file", "search"}
WRITE_TOOLS = {"write_file", "apply_patch"}
EXEC_TOOLS = {"run_command"}
FINAL_TOOLS = {"submit_review", "submit_judgement"}
MCP_PREFIX = "mcp__"
ROLE_TOOLS: dict[Role, list[str]] = {
    Role.coder: ["list_files", "read_file", "search", "write_file", "apply_patch", "run_command"],
    Role.reviewer: ["list_files", "read_file", "search", "submit_review"],
    Role.validator: ["list_files", "read_file", "search", "submit_judgement"],
}
_MCP_NAME = re.compile(r"^mcp__(?P<server>[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*)__(?P<tool>[A-Za-z0-9][\w.-]*)$")


def mcp_name(server: str, tool: str) -> str:
    return f"{MCP_PREFIX}{server}__{tool}"


def split_mcp_name(name: str) -> tuple[str, str] | None:
    """(server, tool) of an `mcp__<server>__<tool>` name, or None when it is not one."""
    match = _MCP_NAME.match(name)
    return (match.group("server"), match.group("tool")) if match else None


def default_grant(role: Role, constraints: Any) -> ToolGrant:
    return ToolGrant(role=role, tools=list(ROLE_TOOLS[role]), constraints=constraints)
