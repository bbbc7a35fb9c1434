"""Helpers for the preview tests: a real git repository with a tiny preview app, and process checks."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from activities.preview.janitor import marked_processes
from activities.workspace import sandbox
from workers.sample.repo import git

PY = sys.executable
NEEDS_BWRAP = pytest.mark.skipif(sandbox.bubblewrap_problem() is not None,
                                 reason=f"bubblewrap cannot run here: {sandbox.bubblewrap_problem()}")
MODES = [pytest.param("bubblewrap", marks=NEEDS_BWRAP), "none"]

APP = textwrap.dedent(
    """
    import http.server, pathlib, sys

    MODE = pathlib.Path("mode.txt").read_text().strip()


    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                return self.send(200, "ok")
            if self.path == "/hello":
                return self.send(500, "internal error") if MODE == "broken" else self.send(200, "hello world")
            self.send(404, "not found")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            self.send(201, f"echo {body} token={self.headers.get('X-Token')}")

        def send(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            print("request:", fmt % args, flush=True)


    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {sys.argv[1]} in {MODE} mode", flush=True)
    server.serve_forever()
    """
)

NEVER_READY = "import time\nprint('warming up', flush=True)\ntime.sleep(60)\n"
CRASH = "import sys\nprint('boom: DATABASE_URL is not set', file=sys.stderr)\nsys.exit(3)\n"


@dataclass
class AppRepo:
    path: Path
    good: str  # head sha whose app answers /hello with 200
    broken: str  # head sha whose app answers /hello with 500

    def worktrees(self) -> list[str]:
        out = git(self.path, "worktree", "list", "--porcelain")
        return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def make_app_repo(tmp_path: Path) -> AppRepo:
    """Two commits: `good` (the app answers /hello with 200) and `broken` (500)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text(APP)
    (repo / "never.py").write_text(NEVER_READY)
    (repo / "crash.py").write_text(CRASH)
    (repo / "mode.txt").write_text("good\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "good app")
    good = git(repo, "rev-parse", "HEAD").strip()
    (repo / "mode.txt").write_text("broken\n")
    git(repo, "commit", "-q", "-am", "break it")
    broken = git(repo, "rev-parse", "HEAD").strip()
    return AppRepo(path=repo, good=good, broken=broken)


class Processes:
    """Checks that a process group is gone; handed to tests as the `procs` fixture."""

    @staticmethod
    def assert_preview_gone(preview_id: str) -> None:
        """No live process carries the preview's marker (inside a sandbox too, where pids and groups differ)."""
        assert marked_processes(preview_id) == []

    @staticmethod
    def assert_group_gone(pgid: int) -> None:
        """Strict: the group has no member at all, not even a zombie (use where every member is our child)."""
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)

    @staticmethod
    def live_members(pgid: int) -> list[int]:
        """Members of a group that still run. Zombies do not count: on this sandbox PID 1 never reaps
        orphans, so a grandchild orphaned by the kill stays a zombie (dead, holding nothing) for good."""
        alive = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc.pid)
            except (psutil.Error, ProcessLookupError):
                continue
        return alive
