"""`spec2ship preview render`: the YAML the vCluster backend would create, notes on stderr, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from vcluster_world import DEPLOYMENT, SERVICE_YAML

from workers.cli import app
from workers.sample.repo import build_sample

SHA = "0123456789abcdef0123456789abcdef01234567"
SPEC = """\
---
spec: 1
title: List items
service: inventory
team: platform
acceptance:
  - id: items
    http: {path: /items, body_contains: widget}
preview:
  manifests: deploy/preview
  image: ghcr.io/acme/inventory:{sha}
  ci_check: build-image
  ready: /healthz
---
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "inventory"
    (folder / "deploy" / "preview").mkdir(parents=True)
    (folder / "deploy" / "preview" / "deployment.yaml").write_text(DEPLOYMENT)
    (folder / "deploy" / "preview" / "service.yaml").write_text(SERVICE_YAML)
    return folder


def render(runner: CliRunner, spec: Path, repo: Path, *extra: str, controller: str = "argocd") -> tuple[int, str, str]:
    args = ["preview", "render", str(spec), "--repo", str(repo), "--controller", controller, "--pr", "9", "--sha", SHA]
    result = runner.invoke(app, [*args, *extra])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("controller", "kinds"), [
    ("argocd", ["Namespace", "Application", "Deployment", "Service"]),
    ("flux", ["Namespace", "HelmRepository", "HelmRelease", "Deployment", "Service"]),
])
def test_preview_render_prints_what_the_vcluster_backend_creates(
    runner: CliRunner, tmp_path: Path, repo: Path, controller: str, kinds: list[str]
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    code, out, err = render(runner, spec, repo, controller=controller)
    assert (code, err) == (0, "")
    documents = list(yaml.safe_load_all(out))
    assert [doc["kind"] for doc in documents] == kinds
    deployment = documents[-2]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/acme/inventory:{SHA}"
    assert {doc["metadata"]["labels"]["spec2ship.dev/pr"] for doc in documents} == {"9"}
    assert out.count("# virtual cluster s2s-inventory-pr9-0123456") == 2


def test_preview_render_of_the_sample_spec_notes_that_nothing_is_deployed(runner: CliRunner, tmp_path: Path) -> None:
    paths = build_sample(tmp_path)
    code, out, err = render(runner, paths["greet-by-name.md"], paths["repo"], controller="flux")
    assert code == 0
    assert err == ("note: preview.manifests is not set: the virtual cluster would be created, "
                   "but nothing deployed into it\n")
    assert [doc["kind"] for doc in yaml.safe_load_all(out)] == ["Namespace", "HelmRepository", "HelmRelease"]


@pytest.mark.parametrize(("change", "code", "message"), [
    ({"spec": "missing.md"}, 2, "error: {tmp}/missing.md: no such file"),
    ({"controller": "jenkins"}, 2, "error: --controller 'jenkins': use argocd or flux"),
    ({"pr": "0"}, 2, "error: --pr 0: a pull request number is 1 or more"),
    ({"sha": "HEAD"}, 1, "error: --sha 'HEAD' is not a commit id: give 7 to 64 lowercase hexadecimal characters"),
    ({"repo": "nowhere"}, 1, "error: --repo {tmp}/nowhere: not a folder"),
    ({"text": SPEC.replace("image: ghcr.io/acme/inventory:{sha}", "image: ghcr.io/acme/inventory:latest")}, 1,
     "error: {tmp}/spec.md:11: preview.image: preview.image 'ghcr.io/acme/inventory:latest' must contain '{{sha}}' "
     "in its tag, as in ghcr.io/acme/inventory:{{sha}}, so every head commit runs its own image"),
    ({"text": SPEC.replace("team: platform\n", "")}, 1, "error: {tmp}/spec.md:1: team: team is missing"),
    ({"manifests": "kind: [\n"}, 1, "error: deploy/preview/broken.yaml: line 2 is not valid YAML"),
    ({"env": "fluxx"}, 1, "error: configuration: SPEC2SHIP_GITOPS_CONTROLLER: Input should be 'argocd' or 'flux'"),
])
def test_preview_render_bad_input_is_one_line(
    runner: CliRunner, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], code: int,
    message: str,
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(change.get("text", SPEC))
    if "manifests" in change:
        (repo / "deploy" / "preview" / "broken.yaml").write_text(change["manifests"])
    if "env" in change:
        monkeypatch.setenv("SPEC2SHIP_GITOPS_CONTROLLER", change["env"])
    args = ["preview", "render", str(tmp_path / change.get("spec", "spec.md")), "--repo",
            str(tmp_path / change["repo"]) if "repo" in change else str(repo), "--controller",
            change.get("controller", "argocd"), "--pr", change.get("pr", "9"), "--sha", change.get("sha", SHA)]
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(message.format(tmp=tmp_path)), line
    assert "Traceback" not in result.output
