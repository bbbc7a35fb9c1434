"""Building real git repositories for the local forge tests, on a machine where nobody ran `git config`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from activities.forge.local import LocalForge
from contracts.forge import PullRequest
from workers.sample.repo import git as sample_git

FIRST_FILES = {"README.md": "# demo\n", "app.py": "print('hello')\n"}


def isolate_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global or system git config and no identity or GIT_DIR from the environment."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    """The sample's git (gitcli, as the demo author), its output stripped."""
    return sample_git(cwd, *args).strip()


def commit(cwd: Path, files: Mapping[str, str], message: str) -> str:
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def make_branch(repo: Path, name: str, files: Mapping[str, str]) -> str:
    """A branch with one commit on top of main, made in the main worktree (which ends back on main)."""
    git(repo, "switch", "-q", "-c", name)
    sha = commit(repo, files, f"work on {name}")
    git(repo, "switch", "-q", "main")
    return sha


def make_repo(root: Path, second: Mapping[str, str], branch: str = "main") -> Path:
    """`root/repo` with two commits on `branch`: FIRST_FILES, then `second`."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", branch)
    commit(repo, FIRST_FILES, "first")
    commit(repo, second, "second")
    return repo


def open_change(forge: LocalForge, root: Path, files: Mapping[str, str], branch: str = "feature") -> PullRequest:
    """A pull request for `branch`, made as a run makes one: a workspace, a published commit, a PR."""
    dest = root / f"ws-{branch.replace('/', '-')}"
    forge.prepare_workspace(branch, dest)
    for name, text in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    forge.publish_branch(dest, branch, f"change on {branch}")
    return forge.open_pull_request(branch, f"Change {branch}", "body")
