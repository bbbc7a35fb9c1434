"""A merge on the local forge respects the person who has the base branch checked out.

The checkout follows the merge as `git merge --ff-only` would: the merged files change, every other
uncommitted change stays where it was (staged stays staged, unstaged stays unstaged, untracked stays),
and `git status` shows nothing of the merge. Uncommitted changes in the way refuse the merge, without
moving the branch, with a message naming the files and what to do. Each test checks the repository
with git afterwards, not what the forge says it did.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from local_git_repo import commit, git, make_branch, make_repo, open_change

from activities.forge import checkout
from activities.forge.base import ForgeError
from activities.forge.gitcli import Git
from activities.forge.local import LocalForge, get_pull_request_record
from contracts.forge import MergeOutcome, MergeResult, PullRequestState

CHANGE = {"feature.txt": "new\n", "app.py": "print('bye')\n"}


pytestmark = pytest.mark.usefixtures("scratch")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, {"notes.txt": "notes\n"})


def status(where: Path) -> list[str]:
    """`git status --porcelain` lines, untracked files one by one."""
    return sorted(Git(where).run("status", "--porcelain", "--untracked-files=all").stdout.splitlines())


def assert_in_step(where: Path, result: MergeResult) -> None:
    """The checkout's HEAD is the merge, and its index holds the merge's tree except for the person's own
    staged changes: no file the merge brought shows as staged (a staged undo) or unstaged."""
    assert result.outcome is MergeOutcome.merged
    assert git(where, "rev-parse", "HEAD") == result.merge_sha
    merged = set(git(where, "diff", "--name-only", f"{result.merge_sha}^1", result.merge_sha).splitlines())
    assert merged, "the merge brought no files; the test proves nothing"
    assert not merged & set(git(where, "diff", "--cached", "--name-only").splitlines())
    assert not merged & set(git(where, "diff", "--name-only").splitlines())


def check_out_main_elsewhere(repo: Path, tmp_path: Path) -> Path:
    """The main worktree moves to another branch and main is checked out in a second worktree."""
    git(repo, "switch", "-q", "-c", "elsewhere")
    other = tmp_path / "main-checkout"
    git(repo, "worktree", "add", "-q", str(other), "main")
    return other


# --------------------------------------------------------------------------- the checkout follows


def test_a_clean_checkout_follows_the_merge(repo: Path, tmp_path: Path, scratch: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)

    result = forge.merge(pr)

    assert_in_step(repo, result)
    assert status(repo) == []
    assert (repo / "feature.txt").read_text() == "new\n"
    assert (repo / "app.py").read_text() == "print('bye')\n"
    assert str(repo) in result.message and "git merge --ff-only" in result.message
    assert f"spec2ship: merge pull request #{pr.number}" in git(repo, "reflog", "-1", "--format=%gs", "main")
    assert list(scratch.iterdir()) == []  # the throwaway merge worktree is gone


def test_an_unstaged_change_to_another_file_is_kept(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    (repo / "README.md").write_text("# my local edit\n")

    result = forge.merge(pr)

    assert_in_step(repo, result)
    assert status(repo) == [" M README.md"]
    assert (repo / "README.md").read_text() == "# my local edit\n"
    assert (repo / "app.py").read_text() == "print('bye')\n"


def test_a_staged_change_to_another_file_stays_staged(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    (repo / "README.md").write_text("# staged edit\n")
    git(repo, "add", "README.md")
    (repo / "notes.txt").write_text("staged\n")
    git(repo, "add", "notes.txt")
    (repo / "notes.txt").write_text("staged, then edited again\n")

    result = forge.merge(pr)

    assert_in_step(repo, result)
    assert status(repo) == ["M  README.md", "MM notes.txt"]
    assert git(repo, "show", ":README.md") == "# staged edit"
    assert git(repo, "show", ":notes.txt") == "staged"
    assert (repo / "notes.txt").read_text() == "staged, then edited again\n"


def test_untracked_files_are_kept(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    (repo / "scratch").mkdir()
    (repo / "scratch" / "idea.txt").write_text("mine\n")
    (repo / ".git" / "info" / "exclude").write_text(".env\n")
    (repo / ".env").write_text("TOKEN=secret\n")

    result = forge.merge(pr)

    assert_in_step(repo, result)
    assert status(repo) == ["?? scratch/idea.txt"]
    assert (repo / "scratch" / "idea.txt").read_text() == "mine\n"
    assert (repo / ".env").read_text() == "TOKEN=secret\n"


def test_a_careless_commit_after_the_merge_records_only_the_persons_change(repo: Path, tmp_path: Path) -> None:
    """The bug this guards against: the ref moved under the worktree, and `git commit -a` undid the merge."""
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    (repo / "README.md").write_text("# my local edit\n")

    result = forge.merge(pr)
    git(repo, "commit", "-qam", "my own change")

    assert git(repo, "diff", "--name-only", "HEAD^", "HEAD") == "README.md"
    assert git(repo, "show", "HEAD:app.py") == "print('bye')"
    assert git(repo, "show", "HEAD:feature.txt") == "new"
    assert git(repo, "rev-parse", "HEAD^") == result.merge_sha


def test_a_second_worktree_that_has_the_branch_checked_out_follows(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    other = check_out_main_elsewhere(repo, tmp_path)
    (other / "README.md").write_text("# edit in the other worktree\n")

    result = LocalForge(repo, default_branch="main").merge(pr)

    assert_in_step(other, result)
    assert status(other) == [" M README.md"]
    assert (other / "app.py").read_text() == "print('bye')\n"
    assert git(repo, "branch", "--show-current") == "elsewhere"
    assert not (repo / "feature.txt").exists()  # the main worktree is on another branch: untouched
    assert str(other) in result.message


def test_a_change_already_identical_to_the_merge_is_not_in_the_way(repo: Path, tmp_path: Path) -> None:
    """As after a worker died between updating the checkout and moving the branch: the retry completes."""
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    git(repo, "read-tree", "-m", "-u", "main", pr.head_sha)  # the checkout already holds the merged files

    result = forge.merge(pr)

    assert_in_step(repo, result)
    assert status(repo) == []


def test_two_merges_at_once_both_land_in_the_checkout(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    first = open_change(forge, tmp_path, {"one.txt": "1\n"}, branch="one")
    second = open_change(forge, tmp_path, {"two.txt": "2\n"}, branch="two")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda pr: LocalForge(repo).merge(pr), [first, second]))

    assert [r.outcome for r in results] == [MergeOutcome.merged, MergeOutcome.merged]
    assert git(repo, "rev-parse", "HEAD") in {r.merge_sha for r in results}
    assert (repo / "one.txt").read_text() == "1\n" and (repo / "two.txt").read_text() == "2\n"
    assert status(repo) == []


# --------------------------------------------------------------------------- changes in the way


def refused(repo: Path, result: MergeResult, before: str, paths: list[str]) -> None:
    """Nothing moved, the PR is still open, and the message says where, which files and what to do."""
    assert result.outcome is MergeOutcome.checkout_blocked
    assert result.merge_sha is None
    assert result.blocking_paths == paths
    assert git(repo, "rev-parse", "main") == before
    assert str(repo) in result.message and "Nothing was merged" in result.message
    assert "approve the run again" in result.message
    for path in paths:
        assert path in result.message
    assert result.pr is not None and result.pr.state is PullRequestState.open
    record = get_pull_request_record(repo, result.pr.number)
    assert record is not None and record.state is PullRequestState.open and record.merge_sha is None


@pytest.mark.parametrize("staged", [False, True], ids=["unstaged", "staged"])
def test_an_uncommitted_change_to_a_merged_file_refuses_and_the_advice_works(
    repo: Path, tmp_path: Path, scratch: Path, staged: bool
) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    before = git(repo, "rev-parse", "main")
    (repo / "app.py").write_text("print('my own edit')\n")
    (repo / "README.md").write_text("# unrelated edit\n")
    if staged:
        git(repo, "add", "app.py")
    status_before = status(repo)

    result = forge.merge(pr)

    refused(repo, result, before, ["app.py"])
    assert "stash" in result.message
    assert status(repo) == status_before
    assert (repo / "app.py").read_text() == "print('my own edit')\n"
    assert list(scratch.iterdir()) == []
    assert forge.merge(pr).outcome is MergeOutcome.checkout_blocked  # a retry changes nothing

    # The message names a command that clears the way; after it the same merge goes through.
    advice = result.message.split("(`")[1].split("`)")[0]
    subprocess.run(advice, shell=True, check=True, capture_output=True)
    assert_in_step(repo, forge.merge(pr))
    assert status(repo) == [" M README.md"]
    assert (repo / "app.py").read_text() == "print('bye')\n"


@pytest.mark.parametrize("ignored", [False, True], ids=["untracked", "ignored"])
def test_an_untracked_file_where_the_merge_puts_one_refuses(
    repo: Path, tmp_path: Path, ignored: bool
) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    before = git(repo, "rev-parse", "main")
    if ignored:  # git itself would overwrite an ignored file; a person's ignored files are often secrets
        (repo / ".git" / "info" / "exclude").write_text("feature.txt\n")
    (repo / "feature.txt").write_text("my own notes\n")

    result = forge.merge(pr)

    refused(repo, result, before, ["feature.txt"])
    assert ("ignored" if ignored else "untracked") in result.message
    assert ("--all" if ignored else "--include-untracked") in result.message
    assert (repo / "feature.txt").read_text() == "my own notes\n"
    assert git(repo, "diff", "--cached", "--name-only") == ""


def test_an_untracked_file_where_the_merge_needs_a_folder_refuses(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"docs/guide.md": "# guide\n"})
    before = git(repo, "rev-parse", "main")
    (repo / "docs").write_text("a file, not a folder\n")

    result = forge.merge(pr)

    refused(repo, result, before, ["docs"])
    assert "needs a folder" in result.message


def test_a_change_in_the_way_in_a_second_worktree_refuses(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    before = git(repo, "rev-parse", "main")
    other = check_out_main_elsewhere(repo, tmp_path)
    (other / "app.py").write_text("print('edited over there')\n")

    result = LocalForge(repo, default_branch="main").merge(pr)

    assert result.outcome is MergeOutcome.checkout_blocked
    assert result.blocking_paths == ["app.py"]
    assert str(other) in result.message
    assert git(repo, "rev-parse", "main") == before


def test_a_merge_in_progress_in_the_checkout_refuses(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    make_branch(repo, "side", {"side.txt": "side\n"})
    git(repo, "merge", "-q", "--no-ff", "--no-commit", "side")
    before = git(repo, "rev-parse", "main")

    result = forge.merge(pr)

    assert result.outcome is MergeOutcome.checkout_blocked
    assert "a merge is in progress" in result.message and "git merge --abort" in result.message
    assert git(repo, "rev-parse", "main") == before
    assert (repo / ".git" / "MERGE_HEAD").exists()


def test_a_rebase_of_the_branch_under_way_refuses(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    make_branch(repo, "upstream", {"notes.txt": "upstream notes\n"})
    commit(repo, {"notes.txt": "my notes\n"}, "my notes")
    before = git(repo, "rev-parse", "main")
    stopped = subprocess.run(["git", "rebase", "upstream"], cwd=repo, capture_output=True, text=True)
    assert stopped.returncode != 0, "the rebase was meant to stop at a conflict"

    result = LocalForge(repo, default_branch="main").merge(pr)

    assert result.outcome is MergeOutcome.checkout_blocked
    assert "rebase of main is under way" in result.message and "git rebase --abort" in result.message
    assert git(repo, "rev-parse", "main") == before


def test_untracked_files_in_a_folder_where_the_merge_puts_a_file_refuse_in_gits_words(
    repo: Path, tmp_path: Path
) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, {"docs": "a file where the person has a folder\n"})
    before = git(repo, "rev-parse", "main")
    (repo / "docs").mkdir()
    (repo / "docs" / "draft.md").write_text("my draft\n")

    result = forge.merge(pr)

    assert result.outcome is MergeOutcome.checkout_blocked
    assert "git would not update its files" in result.message and "docs" in result.message
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "docs" / "draft.md").read_text() == "my draft\n"


def test_a_checkout_busy_with_another_git_command_is_retried_not_refused(repo: Path, tmp_path: Path) -> None:
    forge = LocalForge(repo)
    pr = open_change(forge, tmp_path, CHANGE)
    before = git(repo, "rev-parse", "main")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")  # as while a person's `git add` runs

    with pytest.raises(ForgeError) as busy:
        forge.merge(pr)

    assert busy.value.retryable and "index.lock" in str(busy.value)
    assert git(repo, "rev-parse", "main") == before
    lock.unlink()
    assert_in_step(repo, forge.merge(pr))


def test_a_branch_moved_by_someone_else_meanwhile_puts_the_checkout_back(repo: Path, tmp_path: Path) -> None:
    """`follow` updates the checkout, then finds the branch moved: it undoes the checkout and says retry."""
    old = git(repo, "rev-parse", "main")
    new = make_branch(repo, "merged", {"feature.txt": "new\n"})
    holders = checkout.holders_of(Git(repo), "main")
    theirs = commit(repo, {"notes.txt": "committed meanwhile\n"}, "a person commits meanwhile")

    with pytest.raises(ForgeError) as moved:
        checkout.follow(Git(repo), holders, "main", old, new, "test merge")

    assert moved.value.retryable and "try the merge again" in str(moved.value)
    assert git(repo, "rev-parse", "main") == theirs
    assert not (repo / "feature.txt").exists()
    assert status(repo) == []
