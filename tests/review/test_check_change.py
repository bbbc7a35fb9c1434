"""The review checks judge the whole change, not the copy of the diff capped for prompts."""

from __future__ import annotations

from pathlib import Path

from activities.evidence.models import CheckStatus
from activities.forge.base import RepoRef
from activities.preview.local import LocalPreviewBackend
from activities.workspace.activities import DIFF_CAP, CheckChangeInput, WorkspaceActivities
from activities.workspace.models import WorkspaceRef
from specs.models import Constraints
from workers.sample.repo import build_sample, git


def test_a_credential_past_the_prompt_cap_is_still_found(tmp_path: Path) -> None:
    repo = build_sample(tmp_path)["repo"]
    base = git(repo, "rev-parse", "HEAD").strip()
    filler = "".join(f"LINE_{n} = {n}\n" for n in range(DIFF_CAP // 10))
    (repo / "greeter" / "big.py").write_text(filler + 'TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"\n')
    workspace = WorkspaceRef(path=str(repo), task_queue="q", branch="main", base_sha=base,
                             repo=RepoRef(location=str(repo)))
    activities = WorkspaceActivities(tmp_path / "data", "q", LocalPreviewBackend(tmp_path / "data"))
    assert activities.diff_workspace(workspace).truncated
    checks = {c.id: c for c in activities.check_change(CheckChangeInput(
        workspace=workspace, constraints=Constraints(max_changed_lines=100_000)))}
    assert checks["secret-scan"].status is CheckStatus.failed
    assert "greeter/big.py" in checks["secret-scan"].evidence
