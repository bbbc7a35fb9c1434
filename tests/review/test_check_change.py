"""The review checks judge the whole change, not the copy of the diff capped for prompts."""

from __future__ import annotations

from pathlib import Path

from activities.preview.local import LocalPreviewBackend
from activities.workspace.activities import DIFF_CAP, WorkspaceActivities
from contracts.evidence import CheckStatus
from contracts.forge import RepoRef
from contracts.workspace import CheckChangeInput, WorkspaceRef
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


def _workspace(tmp_path: Path) -> tuple[Path, WorkspaceRef, WorkspaceActivities]:
    repo = build_sample(tmp_path)["repo"]
    base = git(repo, "rev-parse", "HEAD").strip()
    workspace = WorkspaceRef(path=str(repo), task_queue="q", branch="main", base_sha=base,
                             repo=RepoRef(location=str(repo)))
    return repo, workspace, WorkspaceActivities(tmp_path / "data", "q", LocalPreviewBackend(tmp_path / "data"))


def test_risk_checks_see_protected_paths_and_a_deleted_test_file(tmp_path: Path) -> None:
    repo, workspace, activities = _workspace(tmp_path)
    (repo / ".spec2ship" / "policy.yaml").write_text("default_autonomy: L5\n")
    (repo / "tests" / "test_greeter.py").unlink()
    checks = {c.id: c for c in activities.check_change(CheckChangeInput(workspace=workspace,
                                                                       constraints=Constraints()))}
    assert checks["protected-paths"].kind == "risk" and checks["protected-paths"].status is CheckStatus.failed
    assert [f.path for f in checks["protected-paths"].findings] == [".spec2ship/policy.yaml"]
    assert [(f.rule, f.path) for f in checks["test-erosion"].findings] == [("test-deleted", "tests/test_greeter.py")]
    assert checks["scope"].status is CheckStatus.passed


def test_a_renamed_test_file_is_read_as_a_rename_not_a_deletion(tmp_path: Path) -> None:
    repo, workspace, activities = _workspace(tmp_path)
    (repo / "tests" / "test_greeter.py").rename(repo / "tests" / "test_greeting.py")
    checks = {c.id: c for c in activities.check_change(CheckChangeInput(workspace=workspace,
                                                                       constraints=Constraints()))}
    assert checks["test-erosion"].status is CheckStatus.passed, checks["test-erosion"].evidence
    assert checks["protected-paths"].status is CheckStatus.passed
