"""Which forge adapter serves a `RepoRef`: the one place that maps `RepoRef.kind` to a class.

The GitHub adapter is imported only when a GitHub repository is asked for, so the local forge (the
embedded default) works without GitHub's client libraries being importable.

GitHub connections are shared by every activity of the process, because making them is what costs:
- ONE `GitHubAuth` per API URL and credentials (`github_auth()`): a GitHub App's installation token is
  minted once per installation and hour and then served from its cache, instead of once per activity
  call (which would also count against the App's rate limit);
- ONE `GitHubForge` per repository (and installation, workspace base): its PyGithub client keeps its
  HTTP connections open, and its pauses between writes (GitHub's advice) hold across activities. A forge
  that sat unused for `FORGE_IDLE_S`, or the least recently used one beyond `MAX_FORGES`, is closed.
Changed credentials in the environment (a rotated token, a new key file) take effect on the next call:
the old `GitHubAuth` and its forges are dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from activities.config import data_dir
from activities.forge.base import Forge, ForgeError
from activities.forge.local import LocalForge
from contracts.forge import ForgeKind, RepoRef

if TYPE_CHECKING:
    from activities.forge.github import GitHubForge
    from activities.forge.github_auth import GitHubAuth

FORGE_IDLE_S = 600.0
MAX_FORGES = 64

ForgeKey = tuple[tuple[str, str], str, int | None, str | None, str, bool]


class GitHubConnections:
    """The process's GitHub credentials and forges (thread-safe: activities run in a thread pool)."""

    def __init__(self, idle_s: float = FORGE_IDLE_S, max_forges: int = MAX_FORGES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = idle_s
        self._max = max_forges
        self._clock = clock
        self._lock = threading.Lock()
        self._auths: dict[str, tuple[tuple[str, str], GitHubAuth]] = {}  # API URL -> (key, auth)
        self._forges: OrderedDict[ForgeKey, tuple[GitHubForge, float]] = OrderedDict()

    def auth(self) -> tuple[tuple[str, str], GitHubAuth]:
        """The credentials the environment configures now, with their key; made once per key."""
        from activities.forge.github_auth import GitHubAuth, credentials_key

        key = credentials_key()
        with self._lock:
            held = self._auths.get(key[0])
            if held is not None and held[0] == key:
                return held
            auth = GitHubAuth.from_env()  # a GitHubAuthError (nothing configured) is not cached
            self._auths[key[0]] = (key, auth)
            replaced = held[0] if held is not None else None
            dropped = self._take_forges(lambda forge_key: forge_key[0] == replaced) if replaced else []
        self._close(dropped)
        if held is not None:
            held[1].close()
        return key, auth

    def forge(self, repo: RepoRef, workdir_base: Path) -> GitHubForge:
        from activities.forge.github import GitHubForge
        from activities.forge.github_auth import throttle_from_env

        auth_key, auth = self.auth()
        throttle = throttle_from_env()
        key: ForgeKey = (auth_key, repo.location.lower(), repo.installation_id, repo.default_branch,
                         str(workdir_base), throttle)
        with self._lock:
            held = self._forges.get(key)
            if held is not None and self._clock() - held[1] <= self._idle_s:
                self._forges[key] = (held[0], self._clock())
                self._forges.move_to_end(key)
                return held[0]
        # Made outside the lock: an App without an installation id looks it up on GitHub first.
        made = GitHubForge(repo, auth, workdir_base, throttle=throttle)
        now = self._clock()
        with self._lock:
            idle = self._take_forges(lambda forge_key: now - self._forges[forge_key][1] > self._idle_s)
            raced = self._forges.get(key)
            forge = raced[0] if raced is not None else made
            self._forges[key] = (forge, now)
            self._forges.move_to_end(key)
            while len(self._forges) > self._max:
                idle.append(self._forges.popitem(last=False)[1][0])
        if forge is not made:
            idle.append(made)  # another thread made the same forge meanwhile
        self._close(idle)
        return forge

    def clear(self) -> None:
        with self._lock:
            forges = self._take_forges(lambda _key: True)
            auths = [auth for _key, auth in self._auths.values()]
            self._auths.clear()
        self._close(forges)
        for auth in auths:
            auth.close()

    def _take_forges(self, drop: Callable[[ForgeKey], bool]) -> list[GitHubForge]:
        """Remove (under the lock) the forges `drop` selects; the caller closes them outside it."""
        keys = [key for key in self._forges if drop(key)]
        return [self._forges.pop(key)[0] for key in keys]

    @staticmethod
    def _close(forges: list[GitHubForge]) -> None:
        # Closing only drops the client's pooled connections; a call still under way on it reconnects.
        for forge in forges:
            forge.close()


_github = GitHubConnections()


def github_auth() -> GitHubAuth:
    """The process's GitHub credentials, from the environment (see `github_auth.py`), made once."""
    return _github.auth()[1]


def close_forges() -> None:
    """Close every shared GitHub connection (worker shutdown, tests that change the world under it)."""
    _github.clear()


def forge_for(repo: RepoRef, *, workdir_base: Path | None = None) -> Forge:
    """The adapter for `repo`; a ForgeError (not retryable) when its kind cannot be served here.

    `workdir_base` is where GitHub working copies may live (it only removes workspaces below it); it
    defaults to the workspaces folder of the data directory, where the workspace activities put them.
    """
    if repo.kind is ForgeKind.local:
        return LocalForge(Path(repo.location), default_branch=repo.default_branch)
    if repo.kind is ForgeKind.github:
        try:
            import activities.forge.github  # noqa: F401 - fails here, with the reason, when it cannot load
        except ImportError as exc:
            raise ForgeError(
                f"cannot serve the GitHub repository {repo.location}: the GitHub forge adapter failed to load "
                f"({exc}); install spec2ship with its runtime dependencies (PyGithub) and check "
                "activities/forge/github.py"
            ) from exc
        forge: Forge = _github.forge(repo, (workdir_base or data_dir() / "workspaces").resolve())
        return forge
    raise ForgeError(f"no forge adapter for repositories of kind {repo.kind!r} ({repo.location})")
