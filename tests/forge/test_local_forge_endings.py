"""How a change ends on the local forge, through the forge activities a workflow calls: the PR's real
state in the result, the branch deleted when the policy asks (and kept, with a note, where a person
works on it), and the status label that follows the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_git_repo import git, make_repo, open_change
from temporalio.testing import ActivityEnvironment

from activities.forge.activities import ForgeActivities
from activities.forge.gitcli import Git
from activities.forge.local import CommentKind, LocalForge, get_pull_request_record
from contracts.forge import (
    STATUS_LABELS,
    CloseChangeInput,
    CloseChangeResult,
    CommitStatus,
    MergeInput,
    MergeOutcome,
    MergeResult,
    PublishEvidenceInput,
    PullRequest,
    PullRequestState,
    RepoRef,
)

RUNNING, WAITING = STATUS_LABELS["running"], STATUS_LABELS["awaiting_human"]
MERGED, REJECTED = STATUS_LABELS["merged"], STATUS_LABELS["rejected"]


pytestmark = pytest.mark.usefixtures("scratch")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, {"notes.txt": "notes\n"})


def merge(repo: Path, pr: PullRequest, *, delete_branch: bool = True, default_branch: str | None = None) -> MergeResult:
    request = MergeInput(repo=RepoRef(location=str(repo), default_branch=default_branch), pr=pr,
                         delete_branch=delete_branch)
    result: MergeResult = ActivityEnvironment().run(ForgeActivities().merge_pull_request, request)
    return result


def close(repo: Path, pr: PullRequest, **fields: object) -> CloseChangeResult:
    request = CloseChangeInput.model_validate(
        {"repo": RepoRef(location=str(repo)), "branch": pr.branch, "pr": pr, "note": "rejected: not wanted"} | fields)
    result: CloseChangeResult = ActivityEnvironment().run(ForgeActivities().close_change, request)
    return result


def label(repo: Path, pr: PullRequest, name: str) -> None:
    ActivityEnvironment().run(ForgeActivities().publish_evidence, PublishEvidenceInput(
        repo=RepoRef(location=str(repo)), pr=pr, markdown="## Evidence", status=CommitStatus.pending,
        status_description="running", label=name))


def branch_exists(repo: Path, branch: str) -> bool:
    return Git(repo).rev(f"refs/heads/{branch}") is not None


def labels(repo: Path, number: int) -> list[str]:
    record = get_pull_request_record(repo, number)
    assert record is not None
    return record.labels


# --------------------------------------------------------------------------------------- merged


def test_a_merge_reports_the_merged_pr_and_deletes_its_branch_and_workspace(repo: Path, tmp_path: Path) -> None:
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})
    workspace = tmp_path / "ws-feature"
    assert workspace.is_dir()

    result = merge(repo, pr)
    again = merge(repo, pr)  # a retried activity: the merge and the deletion are both done already

    assert result.outcome is MergeOutcome.merged and again.outcome is MergeOutcome.already_merged
    for each in (result, again):
        assert each.pr is not None and each.pr.state is PullRequestState.merged and each.pr.number == pr.number
        assert each.branch is not None and each.branch.deleted and each.branch.branch == "feature"
    assert not branch_exists(repo, "feature")
    assert not workspace.exists()
    assert git(repo, "rev-parse", "refs/spec2ship/pull/1/head") == pr.head_sha  # the PR's commits stay
    assert git(repo, "show", "main:feature.txt") == "new"


def test_a_merge_keeps_the_branch_unless_asked(repo: Path, tmp_path: Path) -> None:
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})

    result = merge(repo, pr, delete_branch=False)

    assert result.outcome is MergeOutcome.merged and result.branch is None
    assert branch_exists(repo, "feature")


def test_a_merge_refused_deletes_nothing(repo: Path, tmp_path: Path) -> None:
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})
    (repo / "feature.txt").write_text("mine\n")

    result = merge(repo, pr)

    assert result.outcome is MergeOutcome.checkout_blocked and result.branch is None
    assert result.pr is not None and result.pr.state is PullRequestState.open
    assert branch_exists(repo, "feature")


def test_a_branch_checked_out_in_the_main_worktree_is_kept_and_the_result_says_so(
    repo: Path, tmp_path: Path
) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    forge.remove_workspace(tmp_path / "ws-feature")
    git(repo, "switch", "-q", "feature")  # a person looks at the change in their own folder

    result = merge(repo, pr, default_branch="main")

    assert result.outcome is MergeOutcome.merged
    assert result.branch is not None and not result.branch.deleted
    assert "main worktree" in result.branch.note and str(repo) in result.branch.note
    assert branch_exists(repo, "feature") and git(repo, "branch", "--show-current") == "feature"


def test_a_worktree_a_person_made_keeps_its_branch(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"feature.txt": "new\n"})
    forge.remove_workspace(tmp_path / "ws-feature")
    theirs = tmp_path / "looking-at-it"
    git(repo, "worktree", "add", "-q", str(theirs), "feature")
    (theirs / "draft.txt").write_text("my notes on the change\n")

    result = merge(repo, pr)

    assert result.branch is not None and not result.branch.deleted
    assert str(theirs) in result.branch.note and "did not make" in result.branch.note
    assert (theirs / "draft.txt").read_text() == "my notes on the change\n"
    assert branch_exists(repo, "feature")


# --------------------------------------------------------------------------------------- closed


def test_closing_as_rejected_labels_closes_and_deletes_once(repo: Path, tmp_path: Path) -> None:
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})
    label(repo, pr, WAITING)

    first = close(repo, pr, delete_branch=True, label=REJECTED)
    second = close(repo, pr, delete_branch=True, label=REJECTED)

    for each in (first, second):
        assert each.pr is not None and each.pr.state is PullRequestState.closed
        assert each.branch is not None and each.branch.deleted
    assert labels(repo, pr.number) == [REJECTED]
    record = get_pull_request_record(repo, pr.number)
    assert record is not None
    assert [c.body for c in record.comments if c.kind is CommentKind.comment] == ["rejected: not wanted"]
    assert not branch_exists(repo, "feature") and not (tmp_path / "ws-feature").exists()
    assert git(repo, "rev-parse", "refs/spec2ship/pull/1/head") == pr.head_sha


def test_closing_without_a_label_or_deletion_leaves_both(repo: Path, tmp_path: Path) -> None:
    """What workflows recorded before these fields existed asked for: the PR closes, nothing else."""
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})
    label(repo, pr, RUNNING)

    result = close(repo, pr)

    assert result.pr is not None and result.pr.state is PullRequestState.closed and result.branch is None
    assert labels(repo, pr.number) == [RUNNING]
    assert branch_exists(repo, "feature")


def test_closing_a_change_without_a_pr_deletes_the_half_made_branch(repo: Path, tmp_path: Path) -> None:
    LocalForge(repo).prepare_workspace("half-made", tmp_path / "ws")
    request = CloseChangeInput(repo=RepoRef(location=str(repo)), branch="half-made", note="cancelled",
                               delete_branch=True, label=REJECTED)

    result: CloseChangeResult = ActivityEnvironment().run(ForgeActivities().close_change, request)

    assert result.pr is None and result.branch is not None and result.branch.deleted
    assert not branch_exists(repo, "half-made")


# --------------------------------------------------------------------------------------- labels


def test_the_final_label_replaces_running_and_awaiting_human(repo: Path, tmp_path: Path) -> None:
    pr = open_change(LocalForge(repo), tmp_path, {"feature.txt": "new\n"})
    LocalForge(repo).set_labels(None, pr, ["risk:low"], [])

    label(repo, pr, RUNNING)
    assert labels(repo, pr.number) == ["risk:low", RUNNING]
    label(repo, pr, WAITING)
    assert labels(repo, pr.number) == ["risk:low", WAITING]
    label(repo, pr, MERGED)
    assert labels(repo, pr.number) == ["risk:low", MERGED]
