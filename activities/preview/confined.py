"""How a local preview's processes are started and reached: confined by bubblewrap, or not at all.

The preview runs code an agent wrote, so where bubblewrap works it runs like an agent command: no
network (its own loopback only), a read-only system, writes only to its worktree and a private /tmp,
the worktree's secret files replaced by an unreadable device, no home folders, and an environment with
nothing of the worker's beyond a short allow-list. The criteria still reach it: the app's port is
bridged to a Unix socket in a folder shared with the worker (bridge.py), the http checks speak HTTP over
that socket, and each `run` criterion gets a sandbox of its own in which the same port leads back to it.

Without bubblewrap the preview runs as before, with the worker user's reach, and says so.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from activities.preview import bridge
from activities.preview.base import PreviewError
from activities.preview.checks import shell
from activities.preview.janitor import MARKER
from activities.workspace import sandbox
from activities.workspace.sandbox import SandboxMounts, SharedFolder, bwrap_argv
from activities.workspace.secrets import scan_secrets

HOST = "127.0.0.1"
_SOCKET_INSIDE = "/run/spec2ship-preview"  # where the shared socket folder appears inside a sandbox
_SOCKET_NAME = "http.sock"
_SOCKET_ADDRESS = f"unix:{_SOCKET_INSIDE}/{_SOCKET_NAME}"
_UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
# Proxy settings can carry credentials (http://user:pass@proxy) and mean nothing without a network.
PROXY_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
                       "http_proxy", "https_proxy", "no_proxy", "all_proxy"})


class PreviewConfinement(Protocol):
    """What the local backend needs to know about the place its preview runs in."""

    def prepare(self) -> None:
        """Called once the head is checked out, before anything of it runs."""
        ...

    def note(self) -> str:
        """One line for the evidence: the confinement, and what it means."""
        ...

    def env(self, inherited: dict[str, str], preview_id: str) -> dict[str, str]:
        """The environment the preview's processes get, carrying the marker the janitor finds them by."""
        ...

    def start_argv(self, command: str, port: int, env: dict[str, str]) -> list[str]:
        """The program that runs `preview.start` with `env`, the app listening on `port`."""
        ...

    def check_argv(self, command: str, port: int | None, env: dict[str, str]) -> list[str]:
        """The program that runs one `run` criterion with `env`; with `port`, the app answers on it there."""
        ...

    def client(self, base_url: str) -> httpx.AsyncClient:
        """An HTTP client that reaches the app at `base_url`."""
        ...


@dataclass
class Unconfined:
    """The preview as a plain local process: the worker's user, network and files."""

    reason: str

    def prepare(self) -> None:
        return None

    def note(self) -> str:
        return (f"preview confinement: none ({self.reason}); the app and the run criteria ran with the worker "
                "user's access to files, processes and the network")

    def env(self, inherited: dict[str, str], preview_id: str) -> dict[str, str]:
        return inherited | {MARKER: preview_id}

    def start_argv(self, command: str, port: int, env: dict[str, str]) -> list[str]:
        return shell(command)

    def check_argv(self, command: str, port: int | None, env: dict[str, str]) -> list[str]:
        return shell(command)

    def client(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, trust_env=False)


@dataclass
class Bubblewrapped:
    """The preview in bubblewrap. `folder` (private to the worker) holds its /tmp and the socket folder."""

    worktree: Path
    folder: Path
    hidden_files: list[Path] = field(default_factory=list)
    hidden_dirs: list[Path] = field(default_factory=list)

    def prepare(self) -> None:
        """Make the folders and find the secret files of the checked-out head (they are hidden inside)."""
        if len(str(self.socket)) > _UNIX_PATH_MAX:
            raise PreviewError(f"the preview's socket path {self.socket} is longer than a Unix socket allows; "
                               "point TMPDIR at a shorter folder")
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(parents=True, exist_ok=True)
        secrets = scan_secrets(self.worktree)
        self.hidden_files = [self.worktree / name for name in secrets.files]
        self.hidden_dirs = [self.worktree / name for name in secrets.dirs]

    @property
    def tmp(self) -> Path:
        return self.folder / "tmp"

    @property
    def sockets(self) -> Path:
        return self.folder / "sock"

    @property
    def socket(self) -> Path:
        return self.sockets / _SOCKET_NAME

    def note(self) -> str:
        return ("preview confinement: bubblewrap (no network: the criteria reach the app through a Unix socket; "
                "read-only system; writes only to the worktree and a private /tmp; secret files hidden; "
                "the worker's environment and home folders absent)")

    def env(self, inherited: dict[str, str], preview_id: str) -> dict[str, str]:
        kept = {name: value for name, value in inherited.items() if name not in PROXY_ENV}
        return kept | {"HOME": "/tmp", "TMPDIR": "/tmp", MARKER: preview_id}

    def start_argv(self, command: str, port: int, env: dict[str, str]) -> list[str]:
        return self._argv(_bridged(_SOCKET_ADDRESS, f"tcp:{HOST}:{port}", command), env, writable_sockets=True)

    def check_argv(self, command: str, port: int | None, env: dict[str, str]) -> list[str]:
        if port is None:
            return self._argv(shell(command), env, writable_sockets=False)
        return self._argv(_bridged(f"tcp:{HOST}:{port}", _SOCKET_ADDRESS, command), env, writable_sockets=False)

    def client(self, base_url: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        return httpx.AsyncClient(base_url=base_url, transport=transport, trust_env=False)

    def _argv(self, command: list[str], env: dict[str, str], writable_sockets: bool) -> list[str]:
        """bwrap around `command`. Only the app's sandbox may write the socket folder: it makes the socket."""
        mounts = SandboxMounts(
            workspace=self.worktree,
            tmp=self.tmp,
            hidden_files=self.hidden_files,
            hidden_dirs=self.hidden_dirs,
            read_only=[self.worktree / ".git"],  # the link to the repository, whose git folder is not shown
            shared=[SharedFolder(host=self.sockets, inside=_SOCKET_INSIDE, writable=writable_sockets)],
            root_read_only=True,
        )
        argv = bwrap_argv(mounts, env, command)
        return [shutil.which("bwrap") or argv[0], *argv[1:]]  # found on the worker's PATH, not the preview's


def _bridged(listen: str, dial: str, command: str) -> list[str]:
    source = Path(bridge.__file__).read_text()
    return [sys.executable, "-I", "-S", "-c", source, listen, dial, "--", *shell(command)]


def unconfined_reason(requested: str | None) -> str:
    """Why a preview runs unconfined: turned off, or bubblewrap cannot run here."""
    wanted = (requested or sandbox.setting()).lower()
    if wanted in sandbox.OFF_SETTINGS:
        return f"SPEC2SHIP_SANDBOX={wanted}"
    return f"bubblewrap cannot run here: {sandbox.bubblewrap_problem() or 'unknown'}"
