"""`load_spec` on GitHub issues: the issue's title is the spec's default title, a bad spec is a located,
non-retryable `InvalidSpec`; the local path (inline specs, files) is unchanged."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles.github_server import FakeGitHub
from github_world import REPO
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge.activities import ForgeActivities, read_spec_text
from activities.forge.local import LocalForge
from activities.forge.registry import close_forges
from contracts.forge import ForgeKind, LoadedSpec, LoadSpecInput, RepoRef, SpecSource
from specs.models import AutonomyLevel
from workers.sample.repo import git

UNTITLED = """---
spec: 1
service: shop
team: payments
kind: docs
acceptance:
  - id: readme
    run: grep -q health README.md
---
The README should say how to call /health.
"""

INVALID = """---
spec: 1
service: Bad_Name
team: payments
acceptance: []
---
Nothing to see.
"""

POLICY = "default_autonomy: L2\nservices:\n  shop: {autonomy: L3}\n"


@pytest.fixture
def github(fake: FakeGitHub, token: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RepoRef]:
    for name in [n for n in os.environ if n.startswith("SPEC2SHIP_GITHUB")]:
        monkeypatch.delenv(name)
    for name, value in {"SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token,
                        "SPEC2SHIP_GITHUB_THROTTLE": "false", "SPEC2SHIP_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    close_forges()
    yield RepoRef(kind=ForgeKind.github, location=REPO)
    close_forges()


def load(repo: RepoRef, source: SpecSource) -> LoadedSpec:
    loaded: LoadedSpec = ActivityEnvironment().run(ForgeActivities().load_spec, LoadSpecInput(repo=repo,
                                                                                               source=source))
    return loaded


def test_an_issue_without_a_title_field_takes_the_issues_title(fake: FakeGitHub, github: RepoRef) -> None:
    fake.push_commit(REPO, "main", {".spec2ship/policy.yaml": POLICY})
    number = fake.add_issue(REPO, "Document the health endpoint", UNTITLED, labels=["spec2ship"])
    loaded = load(github, SpecSource(kind="issue", issue_number=number))
    assert loaded.spec.title == "Document the health endpoint"
    assert loaded.source_name == f"{REPO}#{number}"
    assert loaded.policy.level_for("shop") is AutonomyLevel.L3
    assert len(fake.calls("GET", rf"^/repos/{REPO}/issues/{number}$")) == 1  # body and title in one read


def test_a_title_field_in_the_spec_wins_over_the_issues_title(fake: FakeGitHub, github: RepoRef) -> None:
    body = UNTITLED.replace("kind: docs\n", "kind: docs\ntitle: Health in the README\n")
    number = fake.add_issue(REPO, "please document /health", body)
    assert load(github, SpecSource(kind="issue", issue_number=number)).spec.title == "Health in the README"


def test_an_invalid_issue_spec_names_each_problem_and_its_line(fake: FakeGitHub, github: RepoRef) -> None:
    number = fake.add_issue(REPO, "Broken", INVALID)
    with pytest.raises(ApplicationError) as raised:
        load(github, SpecSource(kind="issue", issue_number=number))
    assert raised.value.type == "InvalidSpec"
    assert raised.value.non_retryable
    [problems] = raised.value.details
    assert any(p.startswith(f"{REPO}#{number}:3: service:") for p in problems), problems
    assert any(":5: acceptance:" in p for p in problems), problems


def test_a_pull_request_number_is_not_a_spec(fake: FakeGitHub, github: RepoRef, tmp_path: Path) -> None:
    fake.push_commit(REPO, "spec2ship/x", {"x.txt": "x\n"})
    from activities.forge.registry import forge_for

    pr = forge_for(github).open_pull_request("spec2ship/x", "X", "body")
    with pytest.raises(ApplicationError, match="is a pull request, not an issue") as raised:
        load(github, SpecSource(kind="issue", issue_number=pr.number))
    assert raised.value.non_retryable


def test_the_local_path_is_unchanged(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# r\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    ref = RepoRef(kind=ForgeKind.local, location=str(repo))
    text = UNTITLED.replace("---\nThe README", "---\n# Health docs\nThe README")
    loaded = load(ref, SpecSource(kind="inline", text=text, path="health.md"))
    assert (loaded.spec.title, loaded.source_name) == ("Health docs", "health.md")
    assert read_spec_text(LocalForge(repo), ref, SpecSource(kind="inline", text=text)) == (text, "<inline>", None)
    with pytest.raises(ApplicationError) as raised:
        load(ref, SpecSource(kind="inline", text=UNTITLED, path="untitled.md"))
    assert raised.value.type == "InvalidSpec"
