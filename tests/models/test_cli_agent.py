"""CLI coding agents: a real subprocess in a real git workspace, timed out and cancelled for real."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from activities.agents.cli_agent import CliAgent, CliAgentError
from activities.agents.registry import ModelEntry, ProviderKind
from workers.sample.repo import git

FAKE_AGENT = r'''
import os, subprocess, sys, time
prompt_file, workspace, mode = sys.argv[1], sys.argv[2], os.environ["FAKE_MODE"]
prompt = open(prompt_file).read()
print("stdin:", sys.stdin.read() == prompt, flush=True)
print("TEMPORAL_API_KEY=" + str(os.environ.get("TEMPORAL_API_KEY")), flush=True)
print("AGENT_KEY=" + str(os.environ.get("AGENT_KEY")), flush=True)
if mode == "edit":
    with open(os.path.join(workspace, "README.md"), "a") as f:
        f.write("agent was here\n")
    with open(os.path.join(workspace, "committed.txt"), "w") as f:
        f.write("committed by the agent\n")
    subprocess.run(["git", "add", "committed.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "agent commit"], check=True)
    os.makedirs(os.path.join(workspace, "notes"), exist_ok=True)
    with open(os.path.join(workspace, "notes", "new.txt"), "w") as f:
        f.write(prompt)
    for i in range(100):
        print(f"line {i}", flush=True)
    time.sleep(0.5)
    sys.exit(0)
if mode == "fail":
    print("giving up", flush=True)
    sys.exit(3)
if mode == "hang":
    child = subprocess.Popen(["sleep", "300"])
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(child.pid))
    print("working...", flush=True)
    time.sleep(300)
'''


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "agent@example.com")
    git(repo, "config", "user.name", "Agent")
    (repo / "README.md").write_text("# project\n")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "initial")
    return repo


def agent(tmp_path: Path, mode: str, **extra_env: str) -> CliAgent:
    script = tmp_path / "fake_agent.py"
    script.write_text(FAKE_AGENT)
    entry = ModelEntry(
        name="fake-cli", provider=ProviderKind.cli, api_key_env="AGENT_KEY", timeout_s=60,
        command=f"{sys.executable} {script} {{prompt_file}} {{workspace}}",
        env={"FAKE_MODE": mode, **extra_env},
    )
    worker_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TEMPORAL_API_KEY": "must-not-leak",
                  "AGENT_KEY": "agent-key-value"}
    return CliAgent(entry, heartbeat_interval_s=0.05, kill_grace_s=1, env=worker_env)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


async def eventually_dead(pid: int) -> bool:
    for _ in range(250):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_the_change_comes_back_as_a_diff_with_new_files(tmp_path: Path, workspace: Path) -> None:
    beats: list[dict[str, Any]] = []
    log = tmp_path / "logs" / "agent.log"
    result = await agent(tmp_path, "edit").run(workspace=workspace, prompt="add notes", heartbeat=beats.append,
                                               log_path=log)
    assert result.exit_code == 0
    assert not result.timed_out
    assert "+agent was here" in result.diff
    assert "committed.txt" in result.diff and "+committed by the agent" in result.diff
    assert "notes/new.txt" in result.diff and "+add notes" in result.diff
    assert "prompt.md" not in result.diff
    assert "line 99" in result.log_tail and "line 0\n" not in result.log_tail
    full_log = log.read_text()
    assert "line 0\n" in full_log and "stdin: True" in full_log
    assert "TEMPORAL_API_KEY=None" in full_log
    assert "AGENT_KEY=agent-key-value" in full_log
    assert beats and {"elapsed_s", "log_bytes", "last_line"} <= set(beats[-1])
    assert result.log_path == str(log)


async def test_a_failing_agent_reports_its_exit_code(tmp_path: Path, workspace: Path) -> None:
    result = await agent(tmp_path, "fail").run(workspace=workspace, prompt="x")
    assert result.exit_code == 3
    assert result.diff == ""
    assert "giving up" in result.log_tail


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, workspace: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    result = await agent(tmp_path, "hang", PID_FILE=str(pid_file)).run(workspace=workspace, prompt="x",
                                                                         timeout_s=1.5)
    assert result.timed_out
    assert result.exit_code < 0
    assert "killed after the 1.5s timeout" in result.log_tail
    assert await eventually_dead(int(pid_file.read_text()))


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path, workspace: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    task = asyncio.create_task(agent(tmp_path, "hang", PID_FILE=str(pid_file)).run(workspace=workspace, prompt="x"))
    for _ in range(500):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.02)
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually_dead(grandchild)


async def test_a_missing_command_is_a_clear_error(tmp_path: Path, workspace: Path) -> None:
    entry = ModelEntry(name="ghost", provider=ProviderKind.cli, command="no-such-agent-binary -p {prompt}")
    with pytest.raises(CliAgentError, match="'no-such-agent-binary' not found"):
        await CliAgent(entry, env={"PATH": "/usr/bin:/bin"}).run(workspace=workspace, prompt="x")


async def test_a_workspace_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CliAgentError, match="must be a git repository"):
        await agent(tmp_path, "edit").run(workspace=tmp_path, prompt="x")


def test_placeholders_fill_whole_arguments_without_a_shell(tmp_path: Path) -> None:
    entry = ModelEntry(name="c", provider=ProviderKind.cli,
                       command="claude -p {prompt} --add-dir {workspace} --file={prompt_file}")
    argv = CliAgent(entry).argv(prompt="fix it; rm -rf /", prompt_file=Path("/tmp/p.md"), workspace=Path("/w"))
    assert argv == ["claude", "-p", "fix it; rm -rf /", "--add-dir", "/w", "--file=/tmp/p.md"]
