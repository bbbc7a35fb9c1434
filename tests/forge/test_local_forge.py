"""The local forge against real git: opening repositories, reading, workspaces, publishing, PR records."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import local_git_repo
import pytest
from local_git_repo import commit, git, isolate_git, make_branch

from activities.forge.base import ForgeError
from activities.forge.gitcli import Git
from activities.forge.local import (
    CommentKind,
    LocalForge,
    get_pull_request_record,
    list_notes,
    list_pull_requests,
)
from activities.forge.registry import forge_for
from contracts.forge import CommitStatus, ForgeKind, PullRequestState, RepoRef, SpecSource


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global or system git config: the forge must work on a machine where nobody ran `git config`."""
    isolate_git(monkeypatch, tmp_path)


def make_repo(root: Path, branch: str = "main") -> Path:
    return local_git_repo.make_repo(root, {"specs/change.yaml": "intent: say goodbye\n"}, branch)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


# ------------------------------------------------------------------------------------------ opening


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ForgeError) as caught:
        LocalForge(missing)
    assert str(missing) in str(caught.value) and "git init" in str(caught.value)
    assert caught.value.retryable is False


def test_plain_folder_is_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ForgeError, match="is not a git repository") as caught:
        LocalForge(plain)
    assert str(plain) in str(caught.value)
    assert caught.value.retryable is False


def test_a_file_is_not_a_repository(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(ForgeError, match="is a file, not a folder"):
        LocalForge(path)


def test_subfolder_of_a_repository_names_the_top_folder(repo: Path) -> None:
    with pytest.raises(ForgeError, match="is not its top folder") as caught:
        LocalForge(repo / "specs")
    assert f"point spec2ship at {repo}" in str(caught.value)


@pytest.mark.parametrize("bare", [True, False], ids=["bare", "worktree"])
def test_repository_without_commits_says_to_commit(tmp_path: Path, bare: bool) -> None:
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", *(["--bare"] if bare else []), str(empty))
    with pytest.raises(ForgeError, match="has no commits yet") as caught:
        LocalForge(empty)
    assert str(empty) in str(caught.value) and "first commit" in str(caught.value)
    assert caught.value.retryable is False


def test_default_branch_follows_main_worktree_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, branch="master")
    assert LocalForge(repo).default_branch() == "master"
    git(repo, "branch", "trunk")
    assert LocalForge(repo, default_branch="trunk").default_branch() == "trunk"


def test_default_branch_override_must_exist(repo: Path) -> None:
    with pytest.raises(ForgeError, match="'nope' does not exist"):
        LocalForge(repo, default_branch="nope")


def test_linked_worktree_location_uses_the_main_repository(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    workspace = tmp_path / "ws"
    forge.prepare_workspace("feature", workspace)
    seen_from_worktree = LocalForge(workspace)
    assert seen_from_worktree.default_branch() == "main"
    assert seen_from_worktree.common_dir == forge.common_dir


def test_registry_serves_local_repositories(repo: Path) -> None:
    forge = forge_for(RepoRef(kind=ForgeKind.local, location=str(repo), default_branch="main"))
    assert isinstance(forge, LocalForge)
    assert forge.default_branch() == "main"


def test_registry_routes_github_repositories_to_the_github_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without credentials the GitHub adapter itself refuses, before any network call: proof it was chosen."""
    for name in [n for n in os.environ if n.startswith("SPEC2SHIP_GITHUB")]:
        monkeypatch.delenv(name)
    with pytest.raises(ForgeError, match="GitHub credentials") as caught:
        forge_for(RepoRef(kind=ForgeKind.github, location="octo/demo"))
    assert caught.value.retryable is False


def test_registry_reports_a_github_adapter_that_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "activities.forge.github", None)  # makes the import raise ImportError
    with pytest.raises(ForgeError, match="GitHub forge adapter failed to load") as caught:
        forge_for(RepoRef(kind=ForgeKind.github, location="octo/demo"))
    assert "octo/demo" in str(caught.value)
    assert caught.value.retryable is False


# ------------------------------------------------------------------------------------------ reading


def test_read_spec_inline_file_and_issue(repo: Path) -> None:
    forge = LocalForge(repo)
    assert forge.read_spec(SpecSource(kind="inline", text="intent: x\n")) == ("intent: x\n", "<inline>")
    assert forge.read_spec(SpecSource(kind="inline", text="a", path="specs/a.yaml")) == ("a", "specs/a.yaml")
    assert forge.read_spec(SpecSource(kind="file", path="specs/change.yaml")) == (
        "intent: say goodbye\n",
        "specs/change.yaml",
    )
    with pytest.raises(ForgeError, match=r"no spec file specs/missing\.yaml on branch main"):
        forge.read_spec(SpecSource(kind="file", path="specs/missing.yaml"))
    with pytest.raises(ForgeError, match="has no issues") as caught:
        forge.read_spec(SpecSource(kind="issue", issue_number=7))
    assert "#7" in str(caught.value)


def test_read_spec_file_reads_the_default_branch_not_the_working_tree(repo: Path) -> None:
    (repo / "specs" / "change.yaml").write_text("intent: uncommitted edit\n")
    assert LocalForge(repo).read_spec(SpecSource(kind="file", path="specs/change.yaml"))[0] == "intent: say goodbye\n"


def test_read_file_at_refs(repo: Path) -> None:
    forge = LocalForge(repo)
    first = git(repo, "rev-parse", "HEAD~1")
    make_branch(repo, "other", {"app.py": "print('bye')\n"})
    assert forge.read_file("app.py") == "print('hello')\n"
    assert forge.read_file("./app.py", ref="other") == "print('bye')\n"
    assert forge.read_file("specs/change.yaml", ref=first) is None
    assert forge.read_file("nothing-here.txt") is None
    assert forge.read_file("specs") is None  # a folder is not a file
    with pytest.raises(ForgeError, match="no branch, tag or commit 'no-such-ref'"):
        forge.read_file("app.py", ref="no-such-ref")
    with pytest.raises(ForgeError, match="not a file path inside the repository"):
        forge.read_file("../outside.txt")


def test_permission_is_admin(repo: Path) -> None:
    assert LocalForge(repo).permission("anyone") == "admin"


# --------------------------------------------------------------------------------------- workspaces


def test_prepare_workspace_creates_resumes_and_is_idempotent(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    main_tip = git(repo, "rev-parse", "main")
    dest = tmp_path / "workspaces" / "run-1"
    dest.mkdir(parents=True)  # an empty folder is as good as none
    assert forge.prepare_workspace("spec2ship/run-1", dest) == main_tip
    assert git(dest, "branch", "--show-current") == "spec2ship/run-1"
    assert (dest / "app.py").read_text() == "print('hello')\n"
    assert forge.prepare_workspace("spec2ship/run-1", dest) == main_tip  # same worktree: nothing to do

    (dest / "app.py").write_text("print('bye')\n")
    head = forge.publish_branch(dest, "spec2ship/run-1", "say bye")
    commit(repo, {"later.txt": "main moved on\n"}, "later on main")
    forge.remove_workspace(dest)
    assert not dest.exists()

    # The branch exists: a fresh worktree resumes it, and the base is still where it branched off.
    again = tmp_path / "workspaces" / "run-1-again"
    assert forge.prepare_workspace("spec2ship/run-1", again) == main_tip
    assert git(again, "rev-parse", "HEAD") == head
    assert (again / "app.py").read_text() == "print('bye')\n"


def test_prepare_workspace_after_the_folder_vanished(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    subprocess.run(["rm", "-rf", str(dest)], check=True)  # a worker lost its disk
    forge.prepare_workspace("feature", dest)
    assert git(dest, "branch", "--show-current") == "feature"
    subprocess.run(["rm", "-rf", str(dest)], check=True)
    forge.remove_workspace(dest)  # already gone: nothing to do, and git forgets it
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_remove_workspace_whose_registration_was_lost(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    subprocess.run(["rm", "-rf", str(repo / ".git" / "worktrees")], check=True)
    forge.remove_workspace(dest)
    assert not dest.exists()


def test_prepare_workspace_refuses_occupied_places(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ForgeError, match="is not an empty folder"):
        forge.prepare_workspace("feature", occupied)
    assert (occupied / "keep.txt").read_text() == "mine"

    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    with pytest.raises(ForgeError, match=r"already a worktree .* on feature, not on other"):
        forge.prepare_workspace("other", dest)
    with pytest.raises(ForgeError, match="already checked out in another worktree"):
        forge.prepare_workspace("feature", tmp_path / "second")
    with pytest.raises(ForgeError, match="default branch main"):
        forge.prepare_workspace("main", tmp_path / "third")
    with pytest.raises(ForgeError, match="not a valid branch name"):
        forge.prepare_workspace("bad..name", tmp_path / "fourth")


def test_publish_commits_as_the_bot_once(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Somebody Else")  # the bot's identity must win over the environment
    forge = LocalForge(repo)
    dest = tmp_path / "ws"
    base = forge.prepare_workspace("feature", dest)
    assert forge.publish_branch(dest, "feature", "nothing yet") == base  # nothing to commit: no commit

    (dest / "app.py").write_text("print('bye')\n")
    (dest / "new" / "module.py").parent.mkdir()
    (dest / "new" / "module.py").write_text("X = 1\n")
    head = forge.publish_branch(dest, "feature", "say bye")
    assert forge.publish_branch(dest, "feature", "say bye") == head
    assert git(repo, "rev-list", "--count", "main..feature") == "1"
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "feature") == (
        "spec2ship bot <bot@spec2ship.local>|spec2ship bot <bot@spec2ship.local>|say bye"
    )
    assert git(repo, "show", "feature:new/module.py") == "X = 1"
    assert git(dest, "status", "--porcelain") == ""


def test_publish_refuses_foreign_folders_and_wrong_branches(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    with pytest.raises(ForgeError, match="is not a worktree of"):
        forge.publish_branch(stranger, "feature", "x")
    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    with pytest.raises(ForgeError, match="is on feature, not on other"):
        forge.publish_branch(dest, "other", "x")


def test_remove_workspace_is_idempotent_and_careful(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    (dest / "scratch.txt").write_text("uncommitted")
    forge.remove_workspace(dest)
    forge.remove_workspace(dest)
    assert not dest.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "rev-parse", "--verify", "feature")  # the branch stays

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    with pytest.raises(ForgeError, match="refusing to delete it"):
        forge.remove_workspace(stranger)
    assert stranger.exists()
    with pytest.raises(ForgeError, match="main worktree"):
        forge.remove_workspace(repo)


def test_delete_branch_removes_its_worktrees_and_is_idempotent(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    dest = tmp_path / "ws"
    forge.prepare_workspace("feature", dest)
    forge.delete_branch("feature")
    forge.delete_branch("feature")
    assert not dest.exists()
    assert not Git(repo).run("rev-parse", "--verify", "--quiet", "feature", check=False).ok
    with pytest.raises(ForgeError, match="default branch"):
        forge.delete_branch("main")
    git(repo, "switch", "-q", "-c", "checked-out")
    with pytest.raises(ForgeError, match="checked out in the main worktree"):
        LocalForge(repo, default_branch="main").delete_branch("checked-out")


# ------------------------------------------------------------------------------------ pull requests


def _published(forge: LocalForge, tmp_path: Path, branch: str, files: dict[str, str]) -> tuple[Path, str]:
    dest = tmp_path / f"ws-{branch.replace('/', '-')}"
    forge.prepare_workspace(branch, dest)
    for name, text in files.items():
        (dest / name).write_text(text)
    return dest, forge.publish_branch(dest, branch, f"change {branch}")


def test_open_pull_request_is_idempotent(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    _, head = _published(forge, tmp_path, "feature", {"app.py": "print('bye')\n"})
    assert forge.find_pull_request("feature") is None
    pr = forge.open_pull_request("feature", "Say bye", "Because the spec says so.")
    again = forge.open_pull_request("feature", "Another title", "ignored")
    assert again == pr
    assert (pr.number, pr.branch, pr.base, pr.head_sha, pr.state, pr.title) == (
        1,
        "feature",
        "main",
        head,
        PullRequestState.open,
        "Say bye",
    )
    assert pr.url.startswith("file://") and pr.url.endswith("/spec2ship/pulls/1.json")
    assert forge.find_pull_request("feature") == pr
    assert [r.number for r in list_pull_requests(repo)] == [1]
    record = get_pull_request_record(repo, 1)
    assert record is not None and record.body == "Because the spec says so."
    assert git(repo, "rev-parse", "refs/spec2ship/pull/1/head") == head
    assert get_pull_request_record(repo, 2) is None


def test_open_pull_request_needs_a_branch_with_commits(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    with pytest.raises(ForgeError, match="publish it before opening"):
        forge.open_pull_request("nowhere", "t", "b")
    forge.prepare_workspace("empty", tmp_path / "ws")
    with pytest.raises(ForgeError, match="no commits between main and empty"):
        forge.open_pull_request("empty", "t", "b")
    with pytest.raises(ForgeError, match="from the default branch"):
        forge.open_pull_request("main", "t", "b")
    assert list_pull_requests(repo) == []


def test_publishing_moves_the_open_pull_request_head(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    dest, _ = _published(forge, tmp_path, "feature", {"app.py": "print('bye')\n"})
    forge.open_pull_request("feature", "t", "b")
    (dest / "app.py").write_text("print('goodbye')\n")
    newer = forge.publish_branch(dest, "feature", "more")
    record = get_pull_request_record(repo, 1)
    assert record is not None and record.head_sha == newer
    assert git(repo, "rev-parse", "refs/spec2ship/pull/1/head") == newer
    found = forge.find_pull_request("feature")
    assert found is not None and found.head_sha == newer


def test_pull_request_numbers_never_collide_across_threads(repo: Path) -> None:
    branches = [f"feature-{i}" for i in range(8)]
    for name in branches:
        make_branch(repo, name, {f"{name}.txt": name})

    def open_one(branch: str) -> int:
        return LocalForge(repo).open_pull_request(branch, branch, "").number

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(open_one, branches))
    assert sorted(numbers) == list(range(1, 9))
    assert {r.number: r.branch for r in list_pull_requests(repo)} == dict(zip(numbers, branches, strict=True))


def test_concurrent_opens_for_one_branch_make_one_pull_request(repo: Path) -> None:
    make_branch(repo, "feature", {"f.txt": "f"})
    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = set(pool.map(lambda _: LocalForge(repo).open_pull_request("feature", "t", "").number, range(6)))
    assert numbers == {1}
    assert len(list_pull_requests(repo)) == 1


def test_evidence_is_one_comment_edited_in_place(repo: Path) -> None:
    make_branch(repo, "feature", {"f.txt": "f"})
    forge = LocalForge(repo)
    pr = forge.open_pull_request("feature", "t", "b")
    forge.comment(pr, None, "starting")
    for round_ in (1, 2, 3):
        forge.upsert_evidence(pr, f"## Evidence, round {round_}")
    forge.upsert_evidence(pr, "## Evidence, round 3")
    record = get_pull_request_record(repo, pr.number)
    assert record is not None
    evidence = [c for c in record.comments if c.kind is CommentKind.evidence]
    assert len(evidence) == 1
    assert evidence[0].body == "## Evidence, round 3"
    assert evidence[0].id == 2 and evidence[0].updated_at > evidence[0].created_at
    assert [c.body for c in record.comments] == ["starting", "## Evidence, round 3"]


def test_comments_statuses_and_labels_are_kept(repo: Path) -> None:
    make_branch(repo, "feature", {"f.txt": "f"})
    forge = LocalForge(repo)
    pr = forge.open_pull_request("feature", "t", "b")
    forge.comment(pr, None, "first")
    forge.comment(pr, None, "first")  # a retried activity: said once
    forge.comment(pr, 12, "second")
    forge.set_status(pr, CommitStatus.pending, "validating")
    forge.set_status(pr, CommitStatus.pending, "validating")
    forge.set_status(pr, CommitStatus.success, "evidence passed")
    forge.set_labels(None, pr, ["spec2ship:running", "risk:low"], [])
    forge.set_labels(None, pr, ["spec2ship:merged", "risk:low"], ["spec2ship:running"])
    forge.set_labels(5, None, ["ignored"], [])  # no issues here: nothing to label
    record = get_pull_request_record(repo, pr.number)
    assert record is not None
    assert [(c.id, c.body, c.author) for c in record.comments] == [
        (1, "first", "spec2ship bot"),
        (2, "second", "spec2ship bot"),
    ]
    assert [(s.state, s.description, s.sha) for s in record.statuses] == [
        (CommitStatus.pending, "validating", pr.head_sha),
        (CommitStatus.success, "evidence passed", pr.head_sha),
    ]
    assert record.labels == ["risk:low", "spec2ship:merged"]


def test_comments_without_a_pull_request_become_notes(repo: Path) -> None:
    forge = LocalForge(repo)
    forge.comment(None, None, "the spec has no acceptance criteria")
    forge.comment(None, None, "the spec has no acceptance criteria")
    forge.comment(None, 3, "issue note")
    assert [(n.issue_number, n.body) for n in list_notes(repo)] == [
        (None, "the spec has no acceptance criteria"),
        (3, "issue note"),
    ]


def test_unknown_pull_request_is_a_clear_error(repo: Path) -> None:
    make_branch(repo, "feature", {"f.txt": "f"})
    forge = LocalForge(repo)
    pr = forge.open_pull_request("feature", "t", "b").model_copy(update={"number": 41})
    with pytest.raises(ForgeError, match="no pull request #41"):
        forge.upsert_evidence(pr, "x")


def test_close_pull_request_once(repo: Path) -> None:
    make_branch(repo, "feature", {"f.txt": "f"})
    forge = LocalForge(repo)
    pr = forge.open_pull_request("feature", "t", "b", issue_number=9)
    forge.close_pull_request(pr, "rejected by a human")
    forge.close_pull_request(pr, "rejected by a human")
    record = get_pull_request_record(repo, pr.number)
    assert record is not None and record.state is PullRequestState.closed and record.closed_at is not None
    assert record.issue_number == 9
    assert [c.body for c in record.comments] == ["rejected by a human"]
    found = forge.find_pull_request("feature")
    assert found is not None and found.state is PullRequestState.closed
    reopened = forge.open_pull_request("feature", "t2", "b")  # a closed PR is history: a new one opens
    assert reopened.number == 2 and reopened.state is PullRequestState.open
