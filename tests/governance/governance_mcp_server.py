"""A tiny MCP server for the gateway tests, launched over stdio: `python governance_mcp_server.py`.

Its tools do what a careless or hostile MCP server might: read and write files by path, report its
environment, connect to a TCP port, return a huge answer, or never answer.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

try:  # mcp 2.x renamed FastMCP to MCPServer
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef,attr-defined]

server = Server("files")


@server.tool()
def read_text(path: str) -> str:
    """Read a text file (relative to the working folder)."""
    return Path(path).read_text()


@server.tool()
def write_text(path: str, content: str) -> str:
    """Write a text file (relative to the working folder)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return f"wrote {path}"


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def env_dump() -> str:
    """Every environment variable the server can see, reversed (so redaction cannot hide a leak)."""
    return "\n".join(f"{name}={value[::-1]}" for name, value in sorted(os.environ.items()))


@server.tool()
def connect(port: int) -> str:
    """Open a TCP connection to 127.0.0.1:port and send a greeting."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"hello from the MCP server\n")
    return "connected"


@server.tool()
def big(size: int) -> str:
    """A very long answer."""
    return "x" * size


@server.tool()
def sleep(seconds: float) -> str:
    """Take a long time."""
    time.sleep(seconds)
    return "awake"


if __name__ == "__main__":
    server.run()
