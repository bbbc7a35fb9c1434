"""How a change ends on GitHub, through the forge activities a workflow calls, against the fake GitHub
(held to GitHub's OpenAPI description): the PR's real state in the result, the branch deleted when the
policy asks, and the status label that follows the outcome on the PR and on the spec's issue."""

from __future__ import annotations

from pathlib import Path

import pytest
from doubles.github_server import FakeGitHub
from github_world import REPO, SPEC_BODY
from temporalio.testing import ActivityEnvironment

import activities.forge.activities as forge_activities
from activities.forge.activities import ForgeActivities, delete_finished_branch
from activities.forge.github import GitHubForge
from contracts.forge import (
    STATUS_LABELS,
    CloseChangeInput,
    CloseChangeResult,
    CommitStatus,
    ForgeKind,
    MergeInput,
    MergeOutcome,
    MergeResult,
    PublishEvidenceInput,
    PullRequest,
    PullRequestState,
    RepoRef,
)

BRANCH = "spec2ship/health"
GITHUB = RepoRef(kind=ForgeKind.github, location=REPO)
RUNNING, WAITING = STATUS_LABELS["running"], STATUS_LABELS["awaiting_human"]
MERGED, REJECTED = STATUS_LABELS["merged"], STATUS_LABELS["rejected"]


@pytest.fixture(autouse=True)
def _activities_use_the_fake(monkeypatch: pytest.MonkeyPatch, forge: GitHubForge) -> None:
    """The activities reach the forge the test built (the registry's credentials are tested elsewhere)."""
    monkeypatch.setattr(forge_activities, "_forge", lambda _repo: forge)


@pytest.fixture
def pr(forge: GitHubForge, workdir: Path) -> PullRequest:
    workspace = workdir / "ws"
    forge.prepare_workspace(BRANCH, workspace)
    (workspace / "health.py").write_text("def health():\n    return 200\n")
    forge.publish_branch(workspace, BRANCH, "Add a health endpoint")
    return forge.open_pull_request(BRANCH, "Add a health endpoint", "Adds GET /health.")


def merge(pr: PullRequest, *, delete_branch: bool = True) -> MergeResult:
    request = MergeInput(repo=GITHUB, pr=pr, method="squash", delete_branch=delete_branch)
    result: MergeResult = ActivityEnvironment().run(ForgeActivities().merge_pull_request, request)
    return result


def close(pr: PullRequest, **fields: object) -> CloseChangeResult:
    request = CloseChangeInput.model_validate(
        {"repo": GITHUB, "branch": pr.branch, "pr": pr, "note": "Rejected: not wanted."} | fields)
    result: CloseChangeResult = ActivityEnvironment().run(ForgeActivities().close_change, request)
    return result


def label(pr: PullRequest, name: str, issue: int | None = None) -> None:
    ActivityEnvironment().run(ForgeActivities().publish_evidence, PublishEvidenceInput(
        repo=GITHUB, pr=pr, markdown="## Evidence", status=CommitStatus.pending, status_description="running",
        label=name, issue_number=issue))


# --------------------------------------------------------------------------------------- merged


def test_a_merge_reports_the_merged_pr_and_deletes_its_branch_once(fake: FakeGitHub, pr: PullRequest) -> None:
    result = merge(pr)
    again = merge(pr)  # a retried activity: GitHub says already merged, and the branch is already gone

    assert result.outcome is MergeOutcome.merged and again.outcome is MergeOutcome.already_merged
    for each in (result, again):
        assert each.pr is not None and each.pr.state is PullRequestState.merged and each.pr.number == pr.number
        assert each.branch is not None and each.branch.deleted
    assert fake.branch_sha(REPO, BRANCH) is None
    assert fake.file_at(REPO, "main", "health.py") is not None
    assert len(fake.calls("DELETE", r"/git/refs/heads/")) == 2
    assert fake.issue(REPO, pr.number).state == "closed"


def test_a_merge_keeps_the_branch_unless_asked(fake: FakeGitHub, pr: PullRequest) -> None:
    result = merge(pr, delete_branch=False)

    assert result.outcome is MergeOutcome.merged and result.branch is None
    assert fake.branch_sha(REPO, BRANCH) is not None
    assert fake.calls("DELETE", r"/git/refs/heads/") == []


def test_a_merge_github_refuses_reports_the_open_pr_and_keeps_the_branch(fake: FakeGitHub, pr: PullRequest) -> None:
    fake.set_mergeable(REPO, pr.number, False)

    result = merge(pr)

    assert result.outcome is MergeOutcome.not_mergeable and result.branch is None
    assert result.pr is not None and result.pr.state is PullRequestState.open
    assert fake.branch_sha(REPO, BRANCH) is not None


def test_a_head_that_moved_is_reported_with_the_new_head(fake: FakeGitHub, pr: PullRequest) -> None:
    moved = fake.push_commit(REPO, BRANCH, {"sneaky.py": "import os\n"})

    result = merge(pr)

    assert result.outcome is MergeOutcome.head_changed
    assert result.pr is not None and result.pr.head_sha == moved and result.pr.state is PullRequestState.open


def test_the_default_branch_is_never_deleted(forge: GitHubForge, fake: FakeGitHub) -> None:
    kept = delete_finished_branch(forge, "main")

    assert not kept.deleted and "default branch" in kept.note
    assert fake.branch_sha(REPO, "main") is not None
    assert fake.calls("DELETE", r"/git/refs/heads/") == []


# --------------------------------------------------------------------------------------- closed


def test_closing_as_rejected_labels_pr_and_issue_closes_and_deletes_once(fake: FakeGitHub, pr: PullRequest) -> None:
    issue = fake.add_issue(REPO, "Spec", SPEC_BODY, labels=["spec2ship"])
    label(pr, WAITING, issue)
    assert fake.labels(REPO, issue) == ["spec2ship", WAITING] and fake.labels(REPO, pr.number) == [WAITING]

    first = close(pr, delete_branch=True, label=REJECTED, issue_number=issue)
    second = close(pr, delete_branch=True, label=REJECTED, issue_number=issue)

    for each in (first, second):
        assert each.pr is not None and each.pr.state is PullRequestState.closed
        assert each.branch is not None and each.branch.deleted
    assert fake.labels(REPO, pr.number) == [REJECTED]
    assert fake.labels(REPO, issue) == ["spec2ship", REJECTED]
    assert fake.issue(REPO, pr.number).state == "closed"
    assert [c.body for c in fake.comments(REPO, pr.number)][-1:] == ["Rejected: not wanted."]
    assert fake.branch_sha(REPO, BRANCH) is None


def test_closing_without_a_label_or_deletion_leaves_both(fake: FakeGitHub, pr: PullRequest) -> None:
    """What workflows recorded before these fields existed asked for: the PR closes, nothing else."""
    label(pr, RUNNING)

    result = close(pr)

    assert result.pr is not None and result.pr.state is PullRequestState.closed and result.branch is None
    assert fake.labels(REPO, pr.number) == [RUNNING]
    assert fake.branch_sha(REPO, BRANCH) is not None


def test_closing_a_pr_merged_meanwhile_reports_it_merged(fake: FakeGitHub, forge: GitHubForge, pr: PullRequest) -> None:
    forge.merge(pr)  # a person merged it on GitHub before the run closed it

    result = close(pr, label=REJECTED)

    assert result.pr is not None and result.pr.state is PullRequestState.merged


# --------------------------------------------------------------------------------------- labels


def test_the_final_label_replaces_running_and_awaiting_human(fake: FakeGitHub, pr: PullRequest) -> None:
    issue = fake.add_issue(REPO, "Spec", SPEC_BODY, labels=["spec2ship"])

    label(pr, RUNNING, issue)
    label(pr, WAITING, issue)
    label(pr, MERGED, issue)

    assert fake.labels(REPO, pr.number) == [MERGED]
    assert fake.labels(REPO, issue) == ["spec2ship", MERGED]
