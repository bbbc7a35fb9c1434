"""Faults of the forge, on the fake GitHub: each ends in a retry that succeeds, or in a clear reason.

The run is real from end to end: a `spec2ship worker` process, the GitHub forge over PyGithub and git over
smart HTTP against the fake GitHub, a local preview, the gate at L5.

- forge-transient: one run meets, in turn, a primary rate limit (403, X-RateLimit-Reset) listing pull
  requests, a 502 after the PR was opened (the answer lost), a 500 setting the commit status, a secondary
  rate limit (429, Retry-After) on the merge and a 502 after the merge was made (the answer lost). Each is
  retried (by the client for idempotent methods, else by the activity, waiting as GitHub asked); the run
  merges with one PR and one merge commit.
- forge-head-moved: a person pushes to the PR branch while the preview validates the old head; the merge
  is refused for that head (409) and the run fails saying the head is no longer the one validated.
- forge-pr-closed: a person closes the PR while the preview runs; the run fails saying it is closed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fault_cases import FaultCases
from fault_runs import Ending, GitHubRun, github_run, github_spec, stage_reached

from contracts.runs import RunState

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PEOPLE = "maintainer"
PULLS, MERGE, STATUSES = r"/repos/[^/]+/[^/]+/pulls$", r"/pulls/\d+/merge$", r"/statuses/[0-9a-f]+$"


async def transient(folder: Path) -> tuple[Ending, list[str]]:
    async with github_run(folder, "transient") as run:
        fake = run.fake
        fake.rate_limit("GET", PULLS, status=403, retry_after=None, reset_in=2)
        fake.fail("POST", PULLS, 502, after=True)
        fake.fail("POST", STATUSES, 500)
        fake.rate_limit("PUT", MERGE, status=429, retry_after=2)
        fake.fail("PUT", MERGE, 502, after=True)
        run.worker.start()
        await run.submit(github_spec(f"shop-{run.name}"))
        ending = await run.ending()
        injected = [f"{r.method} {r.api_path} -> {r.status}" for r in fake.requests if r.injected]
        return ending, injected


async def by_a_person(folder: Path, name: str, act: Callable[[GitHubRun], Awaitable[str]]) -> tuple[Ending, str]:
    """A person acts on the PR while the preview validates its head (a slow check keeps it there)."""
    async with github_run(folder, name) as run:
        run.worker.start()
        handle = await run.submit(github_spec(f"shop-{run.name}", check="sleep 8 && grep -q '/health' README.md"))
        await stage_reached(handle, "preview")
        did = await act(run)
        return await run.ending(), did


async def push_to_the_branch(run: GitHubRun) -> str:
    [pull] = run.fake.pulls(run.full_name)
    assert pull.pull is not None
    sha = run.fake.push_commit(run.full_name, pull.pull.head_ref, {"NOTES.md": "a person's note\n"})
    return f"pushed {sha[:10]} to {pull.pull.head_ref}"


async def close_the_pull_request(run: GitHubRun) -> str:
    run.fake.add_collaborator(run.full_name, PEOPLE, "write")
    token = run.fake.add_token(PEOPLE)
    number = run.pr_number()
    async with httpx.AsyncClient(base_url=run.fake.api_url, timeout=10) as client:
        answer = await client.patch(f"/repos/{run.full_name}/pulls/{number}", json={"state": "closed"},
                                    headers={"Authorization": f"token {token}"})
    answer.raise_for_status()
    return f"{PEOPLE} closed #{number}"


CASES = {
    "forge-transient": transient,
    "forge-head-moved": functools.partial(by_a_person, name="head-moved", act=push_to_the_branch),
    "forge-pr-closed": functools.partial(by_a_person, name="pr-closed", act=close_the_pull_request),
}


@pytest.mark.parametrize("case", ["forge-transient"])
async def test_transient_forge_faults_are_retried_and_the_run_merges_once(case: str, fault_cases: FaultCases
                                                                         ) -> None:
    ending, injected = await fault_cases.outcome(case)
    print(f"\n{case}: injected {injected}; activities retried: {ending.history.retried()}")
    ending.assert_clean([RunState.merged])
    assert len(injected) == 5, injected  # every fault was met
    assert set(ending.history.retried()) >= {"open_pull_request", "publish_evidence", "merge_pull_request"}


@pytest.mark.parametrize(("case", "says"), [
    ("forge-head-moved", "merge refused (head_changed): the head of #1 is no longer"),
    ("forge-pr-closed", "merge refused (closed): #1 is closed without merging"),
])
async def test_a_person_changing_the_pr_before_the_merge_ends_the_run_with_the_reason(
        case: str, says: str, fault_cases: FaultCases) -> None:
    ending, did = await fault_cases.outcome(case)
    print(f"\n{case}: {did}; {ending.reason()}")
    ending.assert_clean([RunState.failed])
    assert any(reason.startswith(says) for reason in ending.status.reasons), ending.status.reasons
