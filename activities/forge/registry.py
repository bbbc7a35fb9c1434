"""Which forge adapter serves a `RepoRef`: the one place that maps `RepoRef.kind` to a class.

The GitHub adapter is imported only when a GitHub repository is asked for, so the local forge (the
embedded default) works without GitHub's client libraries being importable.
"""

from __future__ import annotations

from pathlib import Path

from activities.config import data_dir
from activities.forge.base import Forge, ForgeError, ForgeKind, RepoRef
from activities.forge.local import LocalForge


def forge_for(repo: RepoRef, *, workdir_base: Path | None = None) -> Forge:
    """The adapter for `repo`; a ForgeError (not retryable) when its kind cannot be served here.

    `workdir_base` is where GitHub working copies may live (it only removes workspaces below it); it
    defaults to the workspaces folder of the data directory, where the workspace activities put them.
    """
    if repo.kind is ForgeKind.local:
        return LocalForge(Path(repo.location), default_branch=repo.default_branch)
    if repo.kind is ForgeKind.github:
        try:
            from activities.forge.github import GitHubForge
            from activities.forge.github_auth import GitHubAuth
        except ImportError as exc:
            raise ForgeError(
                f"cannot serve the GitHub repository {repo.location}: the GitHub forge adapter failed to load "
                f"({exc}); install spec2ship with its runtime dependencies (PyGithub) and check "
                "activities/forge/github.py"
            ) from exc
        forge: Forge = GitHubForge(repo, GitHubAuth.from_env(), workdir_base or data_dir() / "workspaces")
        return forge
    raise ForgeError(f"no forge adapter for repositories of kind {repo.kind!r} ({repo.location})")
