"""Every CLI command answers bad input with one line (exit 1, or 2 for usage), never a traceback, and a
command that talked to Temporal never aborts at exit. Each case here printed a traceback before."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline.pipeline_harness import running_workers
from temporalio.testing import WorkflowEnvironment

from workers.cli import run_command
from workers.sample.repo import build_sample

pytestmark = pytest.mark.slow
SPEC2SHIP = str(Path(sys.executable).parent / "spec2ship")


def _cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SPEC2SHIP, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _one_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def queue() -> str:
    return f"cli-{uuid.uuid4()}"


@pytest.fixture
def env(dev_env: WorkflowEnvironment, queue: str, tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
                SPEC2SHIP_TASK_QUEUE=queue, SPEC2SHIP_DATA_DIR=str(tmp_path / "state"), COLUMNS="80")


def test_steering_a_run_that_does_not_exist_is_one_line(env: dict[str, str]) -> None:
    for verb in (["approve"], ["reject", "--reason", "r"], ["request-changes", "--reason", "r"],
                 ["override", "--decision", "merge", "--reason", "r"]):
        done = _cli(env, verb[0], "spec2ship/nope/nope", *verb[1:], "--as", "bob")
        _one_line(done, 1, "no run 'spec2ship/nope/nope'")
    _one_line(_cli(env, "status", "spec2ship/nope/nope"), 1, "no run")


@pytest.mark.parametrize(("variable", "value"), [("SPEC2SHIP_WORKFLOW_CACHE", "lots"),
                                                  ("SPEC2SHIP_MAX_ACTIVITIES", "0"),
                                                  ("SPEC2SHIP_METRICS_PORT", "99999")])
def test_a_worker_setting_it_cannot_use_is_one_line_naming_the_variable(env: dict[str, str], variable: str,
                                                                         value: str) -> None:
    done = _cli({**env, variable: value}, "worker", "--shutdown-grace", "0", timeout=60)
    _one_line(done, 1, f"{variable}={value!r}")


def test_an_empty_name_or_team_is_one_line(env: dict[str, str]) -> None:
    _one_line(_cli(env, "approve", "x", "--as", ""), 2, "--as")
    _one_line(_cli(env, "budget", "set", "", "--tokens", "5"), 1, "TEAM ''")


def test_spec_files_that_are_not_specs_are_refused_by_name(env: dict[str, str], tmp_path: Path) -> None:
    repo = build_sample(tmp_path)["repo"]
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes(b"---\nspec: 1\ntitle: caf\xe9\n---\n")
    huge = tmp_path / "huge.md"
    huge.write_bytes(b"#" * (1024 * 1024 + 1))
    _one_line(_cli(env, "run", str(latin1), "--repo", str(repo)), 1, "latin1.md:3: not UTF-8 text")
    _one_line(_cli(env, "run", "/dev/zero", "--repo", str(repo)), 1, "/dev/zero: is not a regular file")
    _one_line(_cli(env, "run", str(huge), "--repo", str(repo)), 1, "a spec file is at most 1,048,576 bytes")
    _one_line(_cli(env, "run", str(tmp_path), "--repo", str(repo)), 1, "is a folder")
    _one_line(_cli(env, "run", str(latin1), "--repo", str(repo), "--agent", "scripted:/dev/null"), 1, "scripted:")


async def test_run_wait_ends_when_the_workflow_fails_and_status_says_why(
        env: dict[str, str], dev_env: WorkflowEnvironment, queue: str, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    async with running_workers(dev_env.client, tmp_path / "data", queue):
        done = await asyncio.to_thread(_cli, env, "run", str(paths["greet-by-name.md"]), "--repo", str(paths["repo"]),
                                       "--agent", "no-such-model", "--wait", "--json")
        assert done.returncode == 0, done.stderr
        assert '"state":"failed"' in done.stdout and "no-such-model" in done.stdout, done.stdout
        workflow_id = done.stdout.split('"workflow_id":"', 1)[1].split('"', 1)[0]
        status = await asyncio.to_thread(_cli, env, "status", workflow_id)
        finished = await asyncio.to_thread(_cli, env, "approve", workflow_id, "--as", "bob")
    assert "state: failed" in status.stdout and "plan failed" in status.stdout, status.stdout
    _one_line(finished, 1, "already ended (failed)")


async def test_a_cli_that_talked_to_temporal_never_aborts_at_exit(env: dict[str, str]) -> None:
    codes = [(await asyncio.to_thread(_cli, env, "list", "--json")).returncode for _ in range(10)]
    assert codes == [0] * 10, codes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=2048), name=st.text(alphabet="abcxyz-_.é ", min_size=1, max_size=12))
def test_any_file_given_to_spec_validate_is_answered_in_lines(tmp_path: Path, content: bytes, name: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / name
    if target.is_dir():
        return
    target.write_bytes(content)
    code = run_command(["spec", "validate", str(target)])
    out = capsys.readouterr()
    assert code in {0, 1, 2}
    assert "Traceback" not in out.out + out.err
