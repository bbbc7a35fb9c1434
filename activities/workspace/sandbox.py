"""Confinement of agent commands, MCP servers and local previews with bubblewrap, where the kernel allows it.

Parsing a shell command cannot tell what `python tests/leak.py` will do; confinement can. A confined
process sees a read-only system (/usr, /etc less its unreadable files, the Python it needs), the
workspace read-write with its secret files replaced by an unreadable device and its git internals
read-only, a private /tmp, no home folders, no /run sockets, no other workspaces, no network (its own
loopback only), no capabilities, and its own PID namespace, so nothing it starts outlives it.

bubblewrap (`bwrap`, the sandbox Flatpak uses) needs unprivileged user namespaces; where they are
disabled (some container runtimes) `SPEC2SHIP_SANDBOX=auto` falls back to no confinement and says so,
and `SPEC2SHIP_SANDBOX=bubblewrap` refuses to run commands at all.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

import psutil
from pydantic import BaseModel, Field

# Every process started for one command or MCP call carries this variable with a fresh value, so what
# escaped the process group (setsid, double fork) can still be found and killed afterwards. The value also
# names the workspace (`new_marker`): a worker that died (SIGKILL, OOM) could not kill its commands, and the
# worker that takes its folder over finds them by it (`reap_orphans`).
MARKER = "SPEC2SHIP_TOOL_RUN"


class Confinement(StrEnum):
    bubblewrap = "bubblewrap"
    none = "none"


class SandboxUnavailable(Exception):
    """Confinement was required (SPEC2SHIP_SANDBOX=bubblewrap) but cannot run on this machine."""


class SharedFolder(BaseModel):
    """A host folder shown at another path inside: how a preview and the worker share a Unix socket."""

    host: Path
    inside: str
    writable: bool = False


class SandboxMounts(BaseModel):
    """What one confined process may see besides the system: found by the caller (tools.py, preview/confined.py)."""

    workspace: Path
    workspace_read_only: bool = False
    tmp: Path = Field(description="Private scratch folder, mounted as /tmp and used as HOME.")
    hidden_files: list[Path] = Field(default_factory=list, description="Replaced by an unreadable device.")
    hidden_dirs: list[Path] = Field(default_factory=list, description="Replaced by an empty read-only folder.")
    read_only: list[Path] = Field(default_factory=list, description="Git internals and other read-only binds.")
    shared: list[SharedFolder] = Field(default_factory=list)
    root_read_only: bool = Field(
        default=False, description="Also make the sandbox's own root read-only (no stray writes to /, /var, ...).")
    network: bool = False


_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Never bound whole, even when PATH points into them: they hold other people's and the worker's secrets.
_NEVER_WHOLE = {"/", "/home", "/root", "/tmp", "/var", "/var/tmp", "/run", "/srv", "/mnt", "/media", "/opt", "/etc"}


# SPEC2SHIP_SANDBOX values that turn confinement off.
OFF_SETTINGS = frozenset({"none", "off", "false", "0"})


def setting() -> str:
    """SPEC2SHIP_SANDBOX: `auto` (default), `bubblewrap` (required) or `none`."""
    return os.environ.get("SPEC2SHIP_SANDBOX", "auto").strip().lower() or "auto"


def choose(requested: str | None = None) -> Confinement:
    """The confinement commands get on this machine, or SandboxUnavailable when one was required."""
    wanted = (requested or setting()).lower()
    if wanted in OFF_SETTINGS:
        return Confinement.none
    problem = bubblewrap_problem()
    if problem is None:
        return Confinement.bubblewrap
    if wanted in {"bubblewrap", "bwrap", "required", "on", "true", "1"}:
        raise SandboxUnavailable(
            f"SPEC2SHIP_SANDBOX={wanted} but bubblewrap cannot run here: {problem}. Install bubblewrap and allow "
            "unprivileged user namespaces on the worker, or set SPEC2SHIP_SANDBOX=auto to run unconfined."
        )
    return Confinement.none


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot confine commands here (probed once per process), or None when it can."""
    if shutil.which("bwrap") is None:
        return "the bwrap program is not installed"
    with tempfile.TemporaryDirectory(prefix="spec2ship-probe-") as folder:
        workspace, tmp = Path(folder) / "ws", Path(folder) / "tmp"
        workspace.mkdir()
        tmp.mkdir()
        (workspace / ".env").write_text("PROBE=1\n")
        mounts = SandboxMounts(workspace=workspace, tmp=tmp, hidden_files=[workspace / ".env"])
        probe = "cat .env 2>/dev/null | grep -q PROBE || echo ok > probe"
        argv = bwrap_argv(mounts, {"PATH": "/usr/bin:/bin"}, ["/bin/sh", "-c", probe])
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bwrap failed to start: {error}"
        if result.returncode != 0 or not (workspace / "probe").exists():
            return f"bwrap exited {result.returncode}: {result.stderr.strip()[:300] or 'the probe did not run'}"
    return None


@functools.cache
def _unreadable_system_files() -> tuple[str, ...]:
    """Files under /etc that only their owner can read (shadow, host keys): hidden even from root inside."""
    found: list[str] = []
    for folder, dirs, files in os.walk("/etc"):
        if folder.count("/") > 3:
            dirs[:] = []
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and not info.st_mode & stat.S_IROTH:
                found.append(path)
    return tuple(found)


def _toolchain_dirs(workspace: Path) -> list[str]:
    """Folders the worker's own tools live in: its Python, and the PATH entries (with their prefix).

    A PATH entry `/x/toolchain/bin` brings `/x/toolchain` (its libraries sit next to it), except under
    the home folder, where only the bin folder itself is shown (`~/.cargo` holds registry tokens); a
    version manager's `shims` folder brings the manager's root, which its shims call back into. Nothing
    that contains the workspace, and none of the top-level folders that hold other people's files, is
    ever bound whole.
    """
    home = os.path.realpath(os.path.expanduser("~"))
    candidates = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry.startswith("/") or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        parent = os.path.dirname(real)
        name = os.path.basename(real)
        # pyenv/rbenv/nodenv shims call back into their root; a bin folder elsewhere has its prefix beside it.
        use_parent = parent not in _NEVER_WHOLE and parent != home and (
            name == "shims" or (name == "bin" and not _under(real, [home])))
        candidates.append(parent if use_parent else real)
    dirs: list[str] = []
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if real in _NEVER_WHOLE or real == home or _under(str(workspace), [real]) or real in dirs:
            continue
        dirs.append(real)
    return dirs


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def bwrap_argv(mounts: SandboxMounts, env: dict[str, str], command: list[str]) -> list[str]:
    """The bwrap command line that runs `command` confined to `mounts` with exactly `env`."""
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "spec2ship-sandbox"]
    if mounts.network:
        argv.append("--share-net")
    bound: list[str] = []
    for folder in _SYSTEM_DIRS:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
            bound.append(folder)
    argv += ["--ro-bind", "/etc", "/etc"]
    for secret in _unreadable_system_files():
        argv += ["--ro-bind", "/dev/null", secret]
    # The private /tmp comes before the toolchain: a virtualenv that lives under /tmp must stay visible.
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(mounts.tmp), "/tmp"]
    for real in _toolchain_dirs(mounts.workspace):
        if os.path.isdir(real) and not _under(real, bound) and not _under(real, [str(mounts.workspace)]):
            argv += ["--ro-bind", real, real]
            bound.append(real)
    argv += ["--ro-bind" if mounts.workspace_read_only else "--bind", str(mounts.workspace), str(mounts.workspace)]
    for path in mounts.read_only:
        if path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    for path in mounts.hidden_files:
        if path.exists() or path.is_symlink():
            argv += ["--ro-bind", "/dev/null", str(path)]
    for path in mounts.hidden_dirs:
        if path.is_dir():
            argv += ["--tmpfs", str(path), "--remount-ro", str(path)]
    for shared in mounts.shared:
        argv += ["--bind" if shared.writable else "--ro-bind", str(shared.host), shared.inside]
    if mounts.root_read_only:
        argv += ["--remount-ro", "/"]
    argv += ["--chdir", str(mounts.workspace), "--clearenv"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    return [*argv, "--", *command]


_LIMITS_CODE = (
    "import os, resource, sys\n"
    "fsize, nproc = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\n"
    "cap = nproc if hard == resource.RLIM_INFINITY else min(nproc, hard)\n"
    "resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def with_limits(command: list[str], max_file_bytes: int, extra_processes: int) -> list[str]:
    """`command` started under resource limits: no core dumps, a file-size cap, a process-count cap.

    RLIMIT_NPROC counts every process of the user, so the cap is what the user runs now plus
    `extra_processes`: a fork bomb stops there instead of taking the machine down.
    """
    nproc = _user_tasks() + extra_processes
    return [sys.executable, "-I", "-S", "-c", _LIMITS_CODE, str(max_file_bytes), str(nproc), *command]


def _user_tasks() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count


def new_marker(workspace: Path) -> str:
    """A fresh marker for one command or MCP call in `workspace`."""
    return f"{uuid.uuid4().hex} {Path(workspace).resolve()}"


def reap_orphans(workspaces: Path) -> int:
    """Kill every process whose marker names a workspace under `workspaces`; how many were killed.

    Unconfined commands run in their own session, so SIGKILL of the worker leaves them running with
    nobody to enforce their timeout (under bubblewrap, `--die-with-parent` takes them along). Call it when
    a worker starts, before it takes work: like the preview janitor's forced sweep, it assumes that no
    other live worker shares the folder.
    """
    base = Path(workspaces).resolve()
    killed = 0
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            _, _, where = proc.environ().get(MARKER, "").partition(" ")
            if where and Path(where).is_relative_to(base):
                proc.kill()
                killed += 1
    return killed


def kill_marked(marker: str) -> int:
    """Kill every process that still carries this marker in its environment; how many were killed."""
    killed = 0
    for _ in range(3):
        found = 0
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(MARKER) == marker:
                    proc.kill()
                    found += 1
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed
