"""Merging on the local forge: real merge commits, idempotency, and the outcomes a workflow must handle.

How a checkout of the base branch follows a merge is in test_local_forge_checkout.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_git_repo import commit, git, make_repo, open_change

from activities.forge.base import ForgeError
from activities.forge.local import LocalForge, get_pull_request_record
from contracts.forge import MergeOutcome, PullRequestState

pytestmark = pytest.mark.usefixtures("scratch")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, {"notes.txt": "notes\n"})


def worktree_count(repo: Path) -> int:
    return git(repo, "worktree", "list", "--porcelain").count("worktree ")


def test_merge_in_a_clean_main_worktree(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    before = git(repo, "rev-parse", "main")
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})

    result = forge.merge(pr)
    assert result.outcome is MergeOutcome.merged
    assert result.merge_sha == git(repo, "rev-parse", "main")
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [before, pr.head_sha]
    assert git(repo, "log", "-1", "--format=%an <%ae>", "main") == "spec2ship bot <bot@spec2ship.local>"
    assert "Spec2ship-Pull: 1" in git(repo, "log", "-1", "--format=%B", "main")
    assert (repo / "feature.txt").read_text() == "new\n"  # the checked-out default branch was updated
    assert git(repo, "status", "--porcelain") == ""

    record = get_pull_request_record(repo, pr.number)
    assert record is not None
    assert (record.state, record.merge_sha) == (PullRequestState.merged, result.merge_sha)

    again = forge.merge(pr)
    assert (again.outcome, again.merge_sha) == (MergeOutcome.already_merged, result.merge_sha)
    assert git(repo, "rev-parse", "main") == result.merge_sha


def test_merge_when_the_main_worktree_is_on_another_branch(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    git(repo, "switch", "-q", "-c", "elsewhere")
    result = LocalForge(repo, default_branch="main").merge(pr)
    assert result.outcome is MergeOutcome.merged
    assert git(repo, "rev-parse", "main") == result.merge_sha
    assert git(repo, "branch", "--show-current") == "elsewhere"
    assert not (repo / "feature.txt").exists()


@pytest.mark.parametrize("dirty", [False, True], ids=["clean-main", "dirty-main"])
def test_conflict_is_not_mergeable_and_leaves_nothing_behind(
    repo: Path, tmp_path: Path, scratch: Path, dirty: bool
) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"app.py": "print('from the branch')\n"})
    tip = commit(repo, {"app.py": "print('from main')\n"}, "main changes the same line")
    if dirty:
        (repo / "README.md").write_text("# my local edit\n")
    status_before = git(repo, "status", "--porcelain")

    result = forge.merge(pr)
    assert result.outcome is MergeOutcome.not_mergeable
    assert "app.py" in result.message
    assert git(repo, "rev-parse", "main") == tip
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert git(repo, "status", "--porcelain") == status_before
    assert (repo / "app.py").read_text() == "print('from main')\n"
    assert worktree_count(repo) == 2
    assert list(scratch.iterdir()) == []
    record = get_pull_request_record(repo, pr.number)
    assert record is not None and record.state is PullRequestState.open


def test_head_changed_since_validation(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    validated = open_change(forge, tmp_path, {"feature.txt": "v1\n"})
    before = git(repo, "rev-parse", "main")
    (tmp_path / "ws-feature" / "feature.txt").write_text("v2\n")
    forge.publish_branch(tmp_path / "ws-feature", "feature", "v2")

    result = forge.merge(validated)
    assert result.outcome is MergeOutcome.head_changed
    assert validated.head_sha[:12] in result.message
    assert result.pr is not None and result.pr.state is PullRequestState.open
    assert result.pr.head_sha == git(repo, "rev-parse", "feature")
    assert git(repo, "rev-parse", "main") == before

    current = forge.find_pull_request("feature")
    assert current is not None and current.head_sha != validated.head_sha
    assert forge.merge(current).outcome is MergeOutcome.merged
    assert git(repo, "show", "main:feature.txt") == "v2"


def test_merged_by_hand_counts_as_already_merged(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    git(repo, "merge", "-q", "--no-ff", "-m", "merged by a person", "feature")
    by_hand = git(repo, "rev-parse", "HEAD")
    result = forge.merge(pr)
    assert (result.outcome, result.merge_sha) == (MergeOutcome.already_merged, by_hand)
    record = get_pull_request_record(repo, pr.number)
    assert record is not None and (record.state, record.merge_sha) == (PullRequestState.merged, by_hand)


def test_squash_merge(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    before = git(repo, "rev-parse", "main")
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    result = forge.merge(pr, method="squash")
    assert result.outcome is MergeOutcome.merged
    assert git(repo, "log", "-1", "--format=%P", "main") == before
    assert git(repo, "show", "main:feature.txt") == "new"
    assert forge.merge(pr, method="squash").outcome is MergeOutcome.already_merged


def test_rebase_is_refused_and_closed_is_reported(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    with pytest.raises(ForgeError, match="not a rebase"):
        forge.merge(pr, method="rebase")
    closed = forge.close_pull_request(pr, "no longer wanted")
    assert closed.state is PullRequestState.closed
    result = forge.merge(pr)
    assert result.outcome is MergeOutcome.closed
    assert result.pr is not None and result.pr.state is PullRequestState.closed


def test_merge_in_a_bare_repository(tmp_path: Path, repo: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    forge = LocalForge(bare)
    assert forge.default_branch() == "main"
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    result = forge.merge(pr)
    assert result.outcome is MergeOutcome.merged
    assert git(bare, "rev-parse", "main") == result.merge_sha
    assert git(bare, "show", "main:feature.txt") == "new"
    assert worktree_count(bare) == 2  # the bare entry and the PR's workspace


def test_branch_deleted_before_merge(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    forge.delete_branch("feature")
    result = forge.merge(pr)
    assert result.outcome is MergeOutcome.not_mergeable
    assert "no longer exists" in result.message
    # The pull ref keeps the head commit alive, as GitHub keeps a PR's commits.
    assert git(repo, "rev-parse", "refs/spec2ship/pull/1/head") == pr.head_sha


@pytest.mark.parametrize("method", ["merge", "squash"])
def test_merge_that_landed_before_the_record_was_written(repo: Path, tmp_path: Path, method: str) -> None:
    """A worker that died between moving the branch and writing the record: the retry finds the merge."""
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    result = forge.merge(pr, method="squash" if method == "squash" else "merge")
    record_file = forge.common_dir / "spec2ship" / "pulls" / "1.json"
    record = json.loads(record_file.read_text())
    record.update(state="open", merge_sha=None, merged_at=None)
    record_file.write_text(json.dumps(record))

    again = forge.merge(pr, method="squash" if method == "squash" else "merge")
    assert (again.outcome, again.merge_sha) == (MergeOutcome.already_merged, result.merge_sha)
    assert git(repo, "rev-parse", "main") == result.merge_sha
    stored = get_pull_request_record(repo, 1)
    assert stored is not None and (stored.state, stored.merge_sha) == (PullRequestState.merged, result.merge_sha)
