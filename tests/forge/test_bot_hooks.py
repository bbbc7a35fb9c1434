"""The bot's commits never run repository hooks: a hook is code an agent could have planted."""

from __future__ import annotations

from pathlib import Path

from activities.forge.local import LocalForge
from workers.sample.repo import build_sample


def test_publish_runs_no_hook(tmp_path: Path) -> None:
    repo = build_sample(tmp_path)["repo"]
    marker = tmp_path / "hook-ran"
    for hook in ("pre-commit", "post-commit", "commit-msg", "prepare-commit-msg"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    forge = LocalForge(repo)
    workspace = tmp_path / "ws"
    forge.prepare_workspace("spec2ship/hooks", workspace)
    (workspace / "greeter" / "extra.py").write_text("X = 1\n")
    head = forge.publish_branch(workspace, "spec2ship/hooks", "add extra")
    assert len(head) == 40
    assert not marker.exists(), marker.read_text() if marker.exists() else ""
