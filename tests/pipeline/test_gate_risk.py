"""Whole runs on the embedded stack: the gate guards the factory itself and the tests.

The greeter service is at L5 (full autonomy) and the spec sets no path constraints, so before the
risk checks each of these changes merged on its own.
"""

from __future__ import annotations

import asyncio
import difflib
import uuid
from pathlib import Path

import pytest
import yaml
from pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client

from activities.forge.local import list_pull_requests
from contracts.agents import AgentChoice
from contracts.names import APPROVE
from contracts.runs import HumanAction, RunState, RunStatus
from workers.sample.repo import APP_V1, APP_V2, POLICY, TESTS_V1, TESTS_V2, build_sample, git

pytestmark = pytest.mark.slow

UNCONSTRAINED = """---
spec: 1
title: Greet by name
service: greeter
team: platform
kind: feature
acceptance:
  - id: unit-tests
    run: python -m unittest -q
    timeout: 120
---
# Greet by name
`greeting("Ada")` answers "Hello, Ada".
"""


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"gate-risk-{uuid.uuid4()}"


def _diff(files: dict[str, tuple[str, str]]) -> str:
    return "".join("".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))
                   for path, (old, new) in files.items())


async def _waiting_comment(repo: Path) -> str:
    """The "waiting for a human" comment; it is posted just after the status says awaiting_human."""
    for _ in range(300):
        found = [c.body for pr in list_pull_requests(repo) for c in pr.comments if "waiting for a human" in c.body]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no 'waiting for a human' comment within 30 s")


def _main_file(repo: Path, path: str) -> str:
    return git(repo, "show", f"main:{path}")


async def _run(client: Client, queue: str, tmp_path: Path, files: dict[str, tuple[str, str]],
               policy: dict[str, object] | None = None) -> tuple[Path, RunStatus, str, object]:
    paths = build_sample(tmp_path)
    repo = paths["repo"]
    if policy is not None:
        (repo / ".spec2ship" / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        git(repo, "commit", "-q", "-am", "policy: protect more")
    spec = tmp_path / "greet.md"
    spec.write_text(UNCONSTRAINED)
    patch = tmp_path / "change.diff"
    patch.write_text(_diff(files))
    handle = await start_run(client, queue, repo, spec, AgentChoice(coder=f"patch:{patch}"))
    status = await wait_for_decision(handle)
    evidence = await handle.query("evidence", result_type=str)
    return repo, status, evidence, handle


async def test_a_good_change_without_path_constraints_still_merges_at_l5(dev_client: Client, task_queue: str,
                                                                          tmp_path: Path) -> None:
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        repo, status, evidence, _ = await _run(dev_client, task_queue, tmp_path, {
            "greeter/app.py": (APP_V1, APP_V2), "tests/test_greeter.py": (TESTS_V1, TESTS_V2)})
    assert status.state is RunState.merged, status.reasons
    assert "### Risk" in evidence and "no protected path changed; no test removed" in evidence
    assert "read when the run started" in evidence and "`.spec2ship/policy.yaml` on `main`" in evidence
    assert 'f"Hello, {name}"' in _main_file(repo, "greeter/app.py")


async def test_a_change_that_deletes_a_test_escalates_at_l5(dev_client: Client, task_queue: str,
                                                            tmp_path: Path) -> None:
    replaced = TESTS_V2.replace('''class GreetingTest(unittest.TestCase):
    def test_default(self) -> None:
        self.assertEqual(greeting(), "Hello, world")


''', "")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        repo, status, evidence, _ = await _run(dev_client, task_queue, tmp_path, {
            "greeter/app.py": (APP_V1, APP_V2), "tests/test_greeter.py": (TESTS_V1, replaced)})
    assert status.state is RunState.awaiting_human and status.decision == "escalate", status.reasons
    assert any(r.startswith("test-erosion: 1 test-erosion finding") for r in status.reasons)
    assert "`tests/test_greeter.py:7 (base)` test-removed [python]" in evidence
    assert "`GreetingTest.test_default` removed" in evidence
    assert "test_default" in _main_file(repo, "tests/test_greeter.py"), "merged without a person"


async def test_a_change_that_adds_a_skip_marker_escalates(dev_client: Client, task_queue: str,
                                                          tmp_path: Path) -> None:
    skipped = TESTS_V1.replace("    def test_default", '    @unittest.skip("flaky")\n    def test_default')
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        _repo, status, evidence, _ = await _run(dev_client, task_queue, tmp_path, {
            "greeter/app.py": (APP_V1, APP_V2), "tests/test_greeter.py": (TESTS_V1, skipped)})
    assert status.decision == "escalate", status.reasons
    assert "`tests/test_greeter.py:7` skip-added [python]: `skip` added to `GreetingTest.test_default`" in evidence


async def test_a_policy_edit_escalates_and_main_keeps_its_policy_until_a_person_approves(
        dev_client: Client, task_queue: str, tmp_path: Path) -> None:
    current = yaml.safe_dump(POLICY, sort_keys=False)
    raised = current.replace("default_autonomy: L3", "default_autonomy: L5")
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        repo, status, evidence, handle = await _run(dev_client, task_queue, tmp_path, {
            "greeter/app.py": (APP_V1, APP_V2), ".spec2ship/policy.yaml": (current, raised)})
        assert status.decision == "escalate", status.reasons
        assert "@alice" in await _waiting_comment(repo)
        assert "`.spec2ship/policy.yaml` protected-path: protected (factory, '.spec2ship/**')" in evidence
        assert "default_autonomy: L3" in _main_file(repo, ".spec2ship/policy.yaml")
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="we trust greeter now"))
        final: RunStatus = await handle.result()
    assert final.state is RunState.merged
    assert "default_autonomy: L5" in _main_file(repo, ".spec2ship/policy.yaml")


async def test_a_path_the_repository_protects_escalates_to_its_owners(dev_client: Client, task_queue: str,
                                                                       tmp_path: Path) -> None:
    policy = {**POLICY, "protected": {"add": ["greeter/app.py"], "owners": ["security-team"]}}
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        repo, status, evidence, _ = await _run(dev_client, task_queue, tmp_path, {
            "greeter/app.py": (APP_V1, APP_V2), "tests/test_greeter.py": (TESTS_V1, TESTS_V2)}, policy)
        waiting = await _waiting_comment(repo)
    assert status.decision == "escalate", status.reasons
    assert any("security-team decides" in r for r in status.reasons)
    assert "protected (repository, 'greeter/app.py')" in evidence
    assert "@security-team" in waiting and "@alice" not in waiting
