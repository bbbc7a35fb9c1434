"""MCP tools through the gateway: configuration, grants, listing for the model, calls over stdio to a real
local MCP server (tests/governance/governance_mcp_server.py), redaction, caps, timeouts, reverts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from governance_env import build_repo, coder_grant, new_canary, processes_with

from activities.workspace.dispatch import OUTPUT_CAP, execute
from activities.workspace.mcp_tools import (
    McpConfigError,
    McpServerConfig,
    McpSettings,
    load_settings,
    mcp_tool_specs,
    settings_from_env,
)
from activities.workspace.tools import Workspace
from contracts.agents import ToolCall
from contracts.workspace import ToolStatus
from rules.gateway.governor import GovernorState, admit, check_call

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install -e '.[mcp]')")

SERVER = Path(__file__).with_name("governance_mcp_server.py")
GRANTED = ["mcp__files__read_text", "mcp__files__echo", "mcp__files__sleep", "mcp__files__big",
           "mcp__files__write_text"]


def _settings(**changes: object) -> McpSettings:
    server = McpServerConfig(name="files", command=sys.executable, args=[str(SERVER)], timeout_s=20,
                             read_only_paths=[str(SERVER)])
    return McpSettings(servers=[server.model_copy(update=changes)])


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(build_repo(tmp_path / "repo", new_canary()))


def _call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(id="m", name=name, arguments=arguments)


def test_configuration_is_read_from_yaml_and_errors_are_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    good = tmp_path / "mcp.yaml"
    good.write_text(f"mcp_servers:\n  - name: files\n    command: {sys.executable}\n    args: [{SERVER}]\n"
                    "    network: false\n")
    monkeypatch.setenv("SPEC2SHIP_MCP_CONFIG", str(good))
    assert settings_from_env().server("files") is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  - name: bad__name\n    command: x\n")
    with pytest.raises(McpConfigError, match=r"bad.yaml: servers.0.name"):
        load_settings(bad)
    monkeypatch.setenv("SPEC2SHIP_MCP_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(McpConfigError, match="does not exist"):
        settings_from_env()


@pytest.mark.parametrize(("name", "arguments", "reason"), [
    ("mcp__files__env_dump", {}, "not granted"),
    ("mcp__other__read_text", {"path": "src/app.py"}, "not granted"),
    ("mcp__files__read_text/../x", {}, "not a valid MCP tool name"),
    ("mcp__files____x", {}, "not a valid MCP tool name"),
    ("mcp__files__read_text", {"path": ".env"}, "never readable"),
    ("mcp__files__read_text", {"path": "../x"}, "leaves the repository"),
    ("mcp__files__read_text", {"path": "/etc/passwd"}, "absolute"),
    ("mcp__files__read_text", {"path": "file:///root/.ssh/id_rsa"}, "absolute"),
    ("mcp__files__read_text", {"nested": {"paths": ["src/a", "id_rsa"]}}, "never readable"),
    ("mcp__files__echo", {"text": "token ghp_0123456789abcdefghij0123456789ab"}, "credential"),
    ("mcp__files__echo", {"text": "x" * 70_000}, "limit"),
    ("mcp__files__write_text", {"destination": "README.md", "content": "x"}, "outside the paths"),
])
def test_mcp_calls_are_checked_like_every_tool(name: str, arguments: dict[str, object], reason: str) -> None:
    verdict = check_call(_call(name, **arguments), coder_grant(mcp_tools=GRANTED))
    assert not verdict.allowed and reason in verdict.reason, verdict.reason


def test_mcp_calls_count_towards_rate_limits() -> None:
    grant = coder_grant(mcp_tools=GRANTED, max_calls_per_minute=2)
    state, now = GovernorState(), datetime(2025, 1, 1, tzinfo=UTC)
    verdicts = [admit(state, _call("mcp__files__echo", text=str(i)), grant, now) for i in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False] and "rate limit" in verdicts[2].reason


def test_granted_tools_are_listed_for_the_model(workspace: Workspace) -> None:
    specs = mcp_tool_specs(workspace, coder_grant(mcp_tools=["mcp__files__read_text", "mcp__files__echo"]),
                           _settings())
    assert sorted(spec.name for spec in specs) == ["mcp__files__echo", "mcp__files__read_text"]
    read = next(spec for spec in specs if spec.name == "mcp__files__read_text")
    assert read.parameters["properties"]["path"]["type"] == "string" and "Read a text file" in read.description


def test_a_granted_call_runs_over_stdio_and_is_redacted(workspace: Workspace) -> None:
    grant = coder_grant(mcp_tools=GRANTED)
    echoed = execute(workspace, _call("mcp__files__echo", text="hello over stdio"), grant, mcp=_settings())
    assert echoed.status is ToolStatus.ok and echoed.output == "hello over stdio"
    read = execute(workspace, _call("mcp__files__read_text", path="src/app.py"), grant, mcp=_settings())
    assert read.status is ToolStatus.ok and "def greeting" in read.output
    canary = (workspace.root / ".env").read_text().split("=", 1)[1].split()[0]
    through_link = execute(workspace, _call("mcp__files__read_text", path="src/env-link"), grant, mcp=_settings())
    assert canary not in through_link.output


def test_answers_are_capped_and_slow_servers_are_cut_off(workspace: Workspace) -> None:
    grant = coder_grant(mcp_tools=GRANTED)
    big = execute(workspace, _call("mcp__files__big", size=3_000_000), grant, mcp=_settings())
    assert big.status is ToolStatus.ok and big.truncated and len(big.output) <= OUTPUT_CAP + 100
    root = str(workspace.root)
    slow = execute(workspace, _call("mcp__files__sleep", seconds=3187), grant, mcp=_settings(timeout_s=3))
    assert slow.status is ToolStatus.error and "did not answer within 3s" in slow.output
    assert [pid for pid in processes_with(str(SERVER)) if _cwd(pid) == root] == []


def _cwd(pid: int) -> str:
    import psutil

    try:
        return str(psutil.Process(pid).cwd())
    except psutil.Error:
        return ""


def test_writes_outside_the_paths_are_reverted(workspace: Workspace) -> None:
    grant = coder_grant(mcp_tools=GRANTED)
    ci = workspace.root / ".github" / "workflows" / "ci.yml"
    before = ci.read_text()
    result = execute(Workspace(workspace.root, confinement="none"),
                     _call("mcp__files__write_text", path=".github/workflows/ci.yml", content="pwn"), grant,
                     mcp=_settings(writable=True))
    assert result.status is ToolStatus.error and result.reverted == [".github/workflows/ci.yml"]
    assert ci.read_text() == before
    inside = execute(workspace, _call("mcp__files__write_text", path="src/new.py", content="x = 1\n"), grant,
                     mcp=_settings(writable=True))
    assert inside.status is ToolStatus.ok and (workspace.root / "src/new.py").read_text() == "x = 1\n"


def test_an_unconfigured_server_is_explained(workspace: Workspace) -> None:
    grant = coder_grant(mcp_tools=["mcp__absent__tool"])
    result = execute(workspace, _call("mcp__absent__tool"), grant, mcp=_settings())
    assert result.status is ToolStatus.error and "no MCP server named 'absent'" in result.output
