"""The GitHub forge through the real PyGithub client and real git against the fake GitHub.

Each test drives one forge method over HTTP and checks what the fake holds afterwards (pull requests,
comments, labels, statuses, branches in its bare repositories), not what the forge says it did.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from doubles.github_server import FakeGitHub
from github_world import BOT, REPO, SPEC_BODY

from activities.forge.base import ForgeError
from activities.forge.gitcli import Git
from activities.forge.github import EVIDENCE_MARKER, STATUS_CONTEXT, GitHubForge
from contracts.forge import STATUS_LABELS, CommitStatus, MergeOutcome, PullRequest, PullRequestState, SpecSource

BRANCH = "spec2ship/health"


def publish(
    forge: GitHubForge, workdir: Path, files: dict[str, str] | None = None, branch: str = BRANCH
) -> tuple[Path, str]:
    workspace = workdir / "ws"
    forge.prepare_workspace(branch, workspace)
    for path, content in (files or {"health.py": "def health():\n    return 200\n"}).items():
        (workspace / path).write_text(content)
    return workspace, forge.publish_branch(workspace, branch, "Add a health endpoint")


def opened(forge: GitHubForge, workdir: Path) -> PullRequest:
    publish(forge, workdir)
    return forge.open_pull_request(BRANCH, "Add a health endpoint", "Adds GET /health.")


# --- reading ---------------------------------------------------------------------------------------


def test_reads_a_spec_from_an_issue_with_its_title(fake: FakeGitHub, forge: GitHubForge) -> None:
    number = fake.add_issue(REPO, "Add a health endpoint", SPEC_BODY, labels=["spec2ship"])

    text, name = forge.read_spec(SpecSource(kind="issue", issue_number=number))
    issue = forge.read_issue(number)

    assert text == SPEC_BODY
    assert name == f"{REPO}#{number}"
    assert issue.title == "Add a health endpoint"
    assert issue.labels == ["spec2ship"]
    assert issue.is_open


def test_reads_a_spec_and_files_from_the_default_branch(forge: GitHubForge) -> None:
    assert forge.default_branch() == "main"
    assert forge.read_spec(SpecSource(kind="file", path="specs/health.md")) == (SPEC_BODY, "specs/health.md")
    assert forge.read_file("README.md") == "# shop\n"
    assert forge.read_file(".spec2ship/policy.yaml") is None


def test_a_missing_spec_file_or_a_pull_request_number_is_a_clear_error(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    with pytest.raises(ForgeError, match=r"no spec file specs/nope.md on branch main of acme/shop"):
        forge.read_spec(SpecSource(kind="file", path="specs/nope.md"))
    pr = opened(forge, workdir)
    with pytest.raises(ForgeError, match="is a pull request, not an issue"):
        forge.read_spec(SpecSource(kind="issue", issue_number=pr.number))
    with pytest.raises(ForgeError, match=r"404") as missing:
        forge.read_issue(999)
    assert not missing.value.retryable


# --- git: clone, branch, push --------------------------------------------------------------------------


def test_clones_and_pushes_for_real_with_the_token_only_in_a_header(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path, token: str
) -> None:
    workspace, head = publish(forge, workdir)

    assert fake.branch_sha(REPO, BRANCH) == head
    assert fake.file_at(REPO, BRANCH, "health.py") == b"def health():\n    return 200\n"
    assert fake.file_at(REPO, "main", "health.py") is None
    pushes = fake.calls("POST", r"/acme/shop\.git/git-receive-pack$")
    assert len(pushes) == 1
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert pushes[0].headers["authorization"] == expected
    config = (workspace / ".git" / "config").read_text()
    assert token not in config
    assert f"url = {fake.url}/acme/shop.git" in config


def test_the_git_endpoint_refuses_requests_without_a_token(fake: FakeGitHub, token: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    anonymous = Git(tmp_path, base_env=env).run("ls-remote", f"{fake.url}/{REPO}.git", check=False)
    wrong = "Authorization: Basic " + base64.b64encode(b"x-access-token:ghp_wrong").decode()
    forged = Git(tmp_path, config={"http.extraHeader": wrong}, base_env=env).run(
        "ls-remote", f"{fake.url}/{REPO}.git", check=False)

    assert anonymous.returncode != 0
    assert forged.returncode != 0
    assert {r.status for r in fake.calls("GET", r"/acme/shop\.git/info/refs$")} == {401}


def test_prepare_workspace_resumes_a_branch_that_exists_on_github(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    _, head = publish(forge, workdir)
    main = fake.branch_sha(REPO, "main")

    base = forge.prepare_workspace(BRANCH, workdir / "elsewhere")

    assert base == main
    assert (workdir / "elsewhere" / "health.py").is_file()
    (workdir / "elsewhere" / "more.py").write_text("x = 1\n")
    second = forge.publish_branch(workdir / "elsewhere", BRANCH, "More")
    assert fake.branch_sha(REPO, BRANCH) == second != head


def test_publishing_is_idempotent_and_does_not_overwrite_someone_elses_push(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    workspace, head = publish(forge, workdir)
    assert forge.publish_branch(workspace, BRANCH, "Again") == head  # a retry: nothing new, same head

    human = fake.push_commit(REPO, BRANCH, {"human.txt": "mine\n"})
    (workspace / "health.py").write_text("def health():\n    return 204\n")
    with pytest.raises(ForgeError, match="someone else pushed") as refused:
        forge.publish_branch(workspace, BRANCH, "Change")

    assert not refused.value.retryable
    assert fake.branch_sha(REPO, BRANCH) == human


def test_refuses_the_default_branch_and_paths_outside_the_workspace_base(
    forge: GitHubForge, workdir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ForgeError, match="default branch"):
        forge.prepare_workspace("main", workdir / "ws")
    with pytest.raises(ForgeError, match="outside the workspace base"):
        forge.prepare_workspace(BRANCH, tmp_path / "not-under-base")
    workspace, _ = publish(forge, workdir)
    forge.remove_workspace(workspace)
    forge.remove_workspace(workspace)  # already gone: fine
    assert not workspace.exists()


# --- pull requests ---------------------------------------------------------------------------------


def test_opening_a_pull_request_twice_gives_the_same_one(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    number = fake.add_issue(REPO, "Add a health endpoint", SPEC_BODY)
    _, head = publish(forge, workdir)

    first = forge.open_pull_request(BRANCH, "Add a health endpoint", "Adds GET /health.", issue_number=number)
    second = forge.open_pull_request(BRANCH, "Add a health endpoint", "Adds GET /health.", issue_number=number)

    assert first == second
    assert (first.branch, first.base, first.head_sha, first.state) == (BRANCH, "main", head, PullRequestState.open)
    assert len(fake.pulls(REPO)) == 1
    assert len(fake.calls("POST", r"/repos/acme/shop/pulls$")) == 1
    assert fake.pulls(REPO)[0].body == f"Adds GET /health.\n\nCloses #{number}"
    assert forge.find_pull_request(BRANCH) == first
    assert forge.find_pull_request("spec2ship/other") is None


def test_opening_a_pull_request_without_commits_says_why(forge: GitHubForge, workdir: Path) -> None:
    forge.prepare_workspace(BRANCH, workdir / "ws")
    forge.publish_branch(workdir / "ws", BRANCH, "nothing")  # pushes the branch, no new commit

    with pytest.raises(ForgeError, match="No commits between main and spec2ship/health") as refused:
        forge.open_pull_request(BRANCH, "t", "b")
    assert not refused.value.retryable


def test_closes_a_pull_request_and_deletes_its_branch_idempotently(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    pr = opened(forge, workdir)

    forge.close_pull_request(pr, "Rejected by a human.")
    forge.close_pull_request(pr, "")
    forge.delete_branch(BRANCH)
    forge.delete_branch(BRANCH)

    assert fake.issue(REPO, pr.number).state == "closed"
    assert [c.body for c in fake.comments(REPO, pr.number)] == ["Rejected by a human."]
    assert fake.branch_sha(REPO, BRANCH) is None
    with pytest.raises(ForgeError, match="default branch"):
        forge.delete_branch("main")


# --- evidence, comments, statuses, labels -------------------------------------------------------------


def test_keeps_one_evidence_comment_edited_in_place(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    pr = opened(forge, workdir)
    fake.add_comment(REPO, pr.number, f"{EVIDENCE_MARKER}\nforged evidence", author="mallory")

    for round_ in (1, 2, 3):
        forge.upsert_evidence(pr, f"## Evidence\n\nround {round_}")

    mine = [c for c in fake.comments(REPO, pr.number) if c.user.login == BOT]
    assert len(mine) == 1
    assert mine[0].body == f"{EVIDENCE_MARKER}\n## Evidence\n\nround 3"
    assert len(fake.calls("POST", rf"/issues/{pr.number}/comments$")) == 1
    assert len(fake.calls("PATCH", r"/issues/comments/\d+$")) == 2
    assert fake.comments(REPO, pr.number)[0].body == f"{EVIDENCE_MARKER}\nforged evidence"


def test_a_retried_comment_is_not_posted_twice(fake: FakeGitHub, forge: GitHubForge) -> None:
    number = fake.add_issue(REPO, "Spec", SPEC_BODY)
    forge.comment(None, number, "The spec has 2 problems.")
    forge.comment(None, number, "The spec has 2 problems.")
    forge.comment(None, number, "Fixed, starting.")
    assert [c.body for c in fake.comments(REPO, number)] == ["The spec has 2 problems.", "Fixed, starting."]


def test_sets_the_gate_status_on_the_head_commit(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    pr = opened(forge, workdir)

    forge.set_status(pr, CommitStatus.pending, "validating")
    forge.set_status(pr, CommitStatus.success, "x" * 300, target_url="https://ci.example.com/run/1")

    statuses = fake.statuses(REPO, pr.head_sha)
    assert [(s.context, s.state) for s in statuses] == [(STATUS_CONTEXT, "pending"), (STATUS_CONTEXT, "success")]
    assert len(statuses[1].description or "") == 140
    assert statuses[1].target_url == "https://ci.example.com/run/1"


def test_status_labels_switch_and_only_one_is_on_at_a_time(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    number = fake.add_issue(REPO, "Spec", SPEC_BODY, labels=["spec2ship"])
    pr = opened(forge, workdir)
    running, waiting, merged = STATUS_LABELS["running"], STATUS_LABELS["awaiting_human"], STATUS_LABELS["merged"]

    forge.set_labels(number, pr, add=[running], remove=[])
    forge.set_labels(number, pr, add=[running], remove=[])
    assert fake.labels(REPO, number) == ["spec2ship", running]
    forge.set_labels(number, pr, add=[waiting], remove=[])
    assert fake.labels(REPO, number) == ["spec2ship", waiting]
    assert fake.labels(REPO, pr.number) == [waiting]
    forge.set_labels(number, None, add=[merged], remove=["spec2ship"])

    assert fake.labels(REPO, number) == [merged]
    assert fake.repo(REPO).labels[merged.lower()].color == "0e8a16"
    with pytest.raises(ForgeError, match="only one status label"):
        forge.set_labels(number, None, add=[running, merged], remove=[])


# --- merging -----------------------------------------------------------------------------------------


def test_merges_the_validated_head_and_then_reports_already_merged(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    pr = opened(forge, workdir)

    result = forge.merge(pr, "squash")
    again = forge.merge(pr, "squash")

    assert result.outcome is MergeOutcome.merged
    assert result.merge_sha == fake.branch_sha(REPO, "main")
    assert fake.file_at(REPO, "main", "health.py") is not None
    assert fake.calls("PUT", r"/pulls/\d+/merge$")[0].json()["sha"] == pr.head_sha
    assert again.outcome is MergeOutcome.already_merged
    assert again.merge_sha == result.merge_sha


def test_an_unmergeable_pull_request_is_an_outcome_not_a_crash(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    pr = opened(forge, workdir)
    fake.set_mergeable(REPO, pr.number, False)

    result = forge.merge(pr)

    assert result.outcome is MergeOutcome.not_mergeable
    assert "Pull Request is not mergeable" in result.message
    assert fake.calls("PUT", r"/pulls/\d+/merge$")[0].status == 405


def test_a_head_that_moved_after_validation_is_not_merged(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    pr = opened(forge, workdir)
    fake.push_commit(REPO, BRANCH, {"sneaky.py": "import os\n"})

    result = forge.merge(pr)

    assert result.outcome is MergeOutcome.head_changed
    assert pr.head_sha[:12] in result.message
    assert fake.file_at(REPO, "main", "sneaky.py") is None


def test_a_closed_pull_request_is_not_merged(forge: GitHubForge, workdir: Path) -> None:
    pr = opened(forge, workdir)
    forge.close_pull_request(pr, "")
    assert forge.merge(pr).outcome is MergeOutcome.closed


# --- who may steer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [("admin", "admin"), ("maintain", "write"), ("write", "write"), ("triage", "read"), ("read", "read")],
)
def test_permission_of_collaborators(fake: FakeGitHub, forge: GitHubForge, role: str, expected: str) -> None:
    fake.add_collaborator(REPO, "carol", role)
    assert forge.permission("carol") == expected


def test_permission_of_strangers_is_none(fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.add_user("mallory")
    assert forge.permission("mallory") == "none"  # exists, no access: 200 with "none"
    assert forge.permission("nobody-at-all") == "none"  # no such user: 404
    assert forge.permission("acme") == "admin"  # the owner


# --- failures ----------------------------------------------------------------------------------------


def test_a_5xx_on_a_read_is_retried_in_the_client(fake: FakeGitHub, forge: GitHubForge, workdir: Path) -> None:
    pr = opened(forge, workdir)
    fake.fail("GET", r"/repos/acme/shop/pulls$", 502)

    assert forge.find_pull_request(BRANCH) == pr
    assert [r.status for r in fake.calls("GET", r"/repos/acme/shop/pulls$")][-2:] == [502, 200]


def test_a_5xx_on_a_create_is_a_retryable_error_and_the_retry_succeeds(
    fake: FakeGitHub, forge: GitHubForge, workdir: Path
) -> None:
    publish(forge, workdir)
    fake.fail("POST", r"/repos/acme/shop/pulls$", 503, headers={"Retry-After": "7"})

    with pytest.raises(ForgeError) as failed:
        forge.open_pull_request(BRANCH, "t", "b")
    assert failed.value.retryable
    assert failed.value.retry_after_s == 7
    assert "503" in str(failed.value)

    pr = forge.open_pull_request(BRANCH, "t", "b")  # the activity's retry
    assert [p.number for p in fake.pulls(REPO)] == [pr.number]


def test_a_secondary_rate_limit_is_retryable_with_githubs_wait(fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.rate_limit("GET", r"/collaborators/carol/permission$", status=429, retry_after=30)

    with pytest.raises(ForgeError) as limited:
        forge.permission("carol")

    assert limited.value.retryable
    assert limited.value.retry_after_s == 30
    assert "retry after 30 s" in str(limited.value)
    assert len(fake.calls("GET", r"/collaborators/carol/permission$")) == 1  # not retried in the client


def test_a_primary_rate_limit_waits_until_the_reset(fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.rate_limit("GET", r"/repos/acme/shop$", status=403, retry_after=None, reset_in=120)

    with pytest.raises(ForgeError, match="rate limit") as limited:
        forge.default_branch()

    assert limited.value.retryable
    assert limited.value.retry_after_s is not None
    assert 100 <= limited.value.retry_after_s <= 121


def test_a_plain_403_is_not_retryable(fake: FakeGitHub, forge: GitHubForge) -> None:
    fake.fail("GET", r"/repos/acme/shop$", 403, message="Resource not accessible by integration")

    with pytest.raises(ForgeError, match="Resource not accessible by integration") as refused:
        forge.default_branch()
    assert not refused.value.retryable
