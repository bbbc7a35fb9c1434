"""The git wrapper: results, errors that name the command and stderr, environment hygiene."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.forge.base import ForgeError
from activities.forge.gitcli import BOT_EMAIL, BOT_NAME, Git, GitError, parse_worktrees


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    Git(repo).run("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    Git(repo).as_bot().run("add", "a.txt")
    Git(repo).as_bot().run("commit", "-q", "-m", "first")
    return repo


def test_run_out_ok_and_rev(repo: Path) -> None:
    git = Git(repo)
    result = git.run("log", "--format=%s")
    assert result.ok and result.stdout == "first\n" and result.args == ["log", "--format=%s"]
    assert git.out("log", "--format=%an <%ae>") == f"{BOT_NAME} <{BOT_EMAIL}>"
    assert git.ok("rev-parse", "--verify", "main")
    assert not git.ok("rev-parse", "--verify", "--quiet", "nope")
    assert git.rev("main") == git.out("rev-parse", "HEAD")
    assert git.rev("nope") is None
    assert git.run("cat-file", "-p", "nope", check=False).returncode == 128


def test_failure_names_command_folder_and_stderr(repo: Path) -> None:
    with pytest.raises(GitError) as caught:
        Git(repo).run("checkout", "no-such-branch", hint="Create the branch first")
    error = caught.value
    assert isinstance(error, ForgeError)
    assert error.command == ["git", "checkout", "no-such-branch"]
    assert error.returncode == 1 and error.cwd == repo
    assert "no-such-branch" in error.stderr
    message = str(error)
    assert message.startswith(f"`git checkout no-such-branch` failed in {repo} (exit 1): ")
    assert message.endswith("Create the branch first")
    assert error.retryable is False


def test_a_held_lock_is_retryable(repo: Path) -> None:
    (repo / ".git" / "index.lock").write_text("")
    (repo / "b.txt").write_text("b\n")
    with pytest.raises(GitError) as caught:
        Git(repo).run("add", "b.txt")
    assert caught.value.retryable is True
    assert "index.lock" in str(caught.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        Git(tmp_path / "gone").run("status")


def test_timeout_kills_what_git_started(repo: Path) -> None:
    git = Git(repo, config={"alias.linger": "!sleep 30"}, timeout_s=0.5)
    with pytest.raises(GitError) as caught:
        git.run("linger")
    assert caught.value.retryable is True
    assert "timed out after 0.5s" in str(caught.value)


def test_stdin_is_closed_unless_given(repo: Path) -> None:
    git = Git(repo)
    assert git.out("hash-object", "--stdin") == git.out("hash-object", "--stdin", "--no-filters")
    assert git.run("hash-object", "--stdin", input="hello\n").stdout.strip() == (
        "ce013625030ba8dba906f756967f9e9ca394464a"
    )


def test_bot_identity_beats_the_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Intruder")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "intruder@example.com")
    bot = Git(repo).as_bot()
    bot.run("commit", "-q", "--allow-empty", "-m", "second")
    assert bot.out("log", "-1", "--format=%an|%ce") == f"{BOT_NAME}|{BOT_EMAIL}"


def test_locating_variables_do_not_redirect_git(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    Git(other).run("init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert Git(repo).out("log", "--format=%s") == "first"


def test_worktrees_are_parsed(repo: Path, tmp_path: Path) -> None:
    git = Git(repo)
    git.run("worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    git.run("worktree", "add", "-q", "--detach", str(tmp_path / "detached"))
    trees = git.worktrees()
    assert (trees[0].path, trees[0].branch, trees[0].detached) == (repo, "main", False)  # main worktree first
    assert sorted((t.path, t.branch or "", t.detached) for t in trees[1:]) == [
        (tmp_path / "detached", "", True),
        (tmp_path / "side", "side", False),
    ]
    assert all(t.head and len(t.head) == 40 for t in trees)


def test_parse_bare_and_prunable_entries() -> None:
    text = "worktree /r.git\nbare\n\nworktree /w\nHEAD " + "a" * 40 + "\nbranch refs/heads/x/y\nlocked\nprunable gone\n"
    bare, linked = parse_worktrees(text)
    assert bare.bare and bare.branch is None
    assert (linked.branch, linked.locked, linked.prunable) == ("x/y", True, True)
