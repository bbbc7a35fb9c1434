"""Finding previews past their time by label, and removing them: the janitor Schedule's work, and a
restarted worker's."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client as k8s
from vcluster_world import KubeWorld

from activities.config import VClusterSettings
from activities.preview.vcluster.backend import VClusterPreviewBackend
from activities.preview.vcluster.janitor import expired_previews, find_previews, reap_expired
from activities.preview.vcluster.kube import KubeApi
from activities.preview.vcluster.render import PreviewPlan, plan_preview
from activities.preview.vcluster.teardown import teardown_preview
from specs.models import PreviewConfig

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def create(host: KubeApi, settings: VClusterSettings, *, pr: int, created: datetime, owner: str = "w1") -> PreviewPlan:
    """A preview's host objects as the backend creates them, made at `created` (so it expires TTL later)."""
    plan = plan_preview(config=PreviewConfig(manifests="deploy/preview"), service="inventory", pr=pr,
                        sha=f"{pr:040x}", manifest_files={}, settings=settings, needs_service=False, owner=owner,
                        now=created)
    for obj in plan.host_objects:
        host.apply(obj)
    return plan


def test_vcluster_janitor_finds_expired_previews_by_label(world: KubeWorld) -> None:
    host, settings = world.host_api(), world.settings(ttl_s=3600)
    old = create(host, settings, pr=1, created=NOW - timedelta(hours=2))
    fresh = create(host, settings, pr=2, created=NOW - timedelta(minutes=10))
    world.host.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})  # not a preview
    found = find_previews(host, settings)
    assert [preview.name for preview in found] == [old.identity.name, fresh.identity.name]
    kinds = {"argocd": "Application", "flux": "HelmRelease"}[world.controller]
    assert any(entry.startswith(kinds) for entry in found[0].found_as)
    assert [p.name for p in expired_previews(host, settings, now=NOW)] == [old.identity.name]
    reports = reap_expired(host, settings, now=NOW)
    assert [(report.preview, report.complete) for report in reports] == [(old.identity.name, True)]
    remaining = {p.name for p in find_previews(host, settings)}
    assert remaining == {fresh.identity.name}
    assert world.host.get("v1", "Namespace", "", "team-a") is not None


def test_vcluster_janitor_finds_an_application_that_outlived_its_namespace(argo_world: KubeWorld) -> None:
    world = argo_world
    host, settings = world.host_api(), world.settings(ttl_s=60)
    plan = create(host, settings, pr=3, created=NOW - timedelta(hours=1))
    world.host.delete("v1", "Namespace", "", plan.identity.name)  # someone removed the namespace by hand
    [found] = expired_previews(host, settings, now=NOW)
    assert found.found_as == [f"Application argocd/{plan.identity.name}"]
    report = teardown_preview(host, found.name, settings)
    assert report.complete and report.deleted == [f"Application argocd/{plan.identity.name}"]
    assert find_previews(host, settings) == []


def test_vcluster_reap_at_restart_removes_only_this_workers_previews(argo_world: KubeWorld) -> None:
    world = argo_world
    host, settings = world.host_api(), world.settings()
    mine = create(host, settings, pr=4, created=datetime.now(UTC), owner="worker-1")
    theirs = create(host, settings, pr=5, created=datetime.now(UTC), owner="worker-2")
    assert world.backend(owner="worker-1").reap() == []  # nothing has expired
    lines = world.backend(owner="worker-1").reap(force=True)
    assert lines == [f"preview {mine.identity.name} torn down (Application argocd/{mine.identity.name}, "
                     f"Namespace {mine.identity.name})"]
    assert [p.name for p in find_previews(host, settings)] == [theirs.identity.name]


def test_vcluster_reap_when_the_cluster_is_away_says_so(tmp_path: Path) -> None:
    """A worker must start even when the host cluster does not answer; the janitor's next sweep retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # nothing listens here once the socket is closed
    host = KubeApi(k8s.ApiClient(k8s.Configuration(host=f"http://127.0.0.1:{dead}")))
    backend = VClusterPreviewBackend(VClusterSettings(), owner="w1", host=host)
    [line] = backend.reap(force=True)
    assert line.startswith("leftover previews not searched: GET /api/v1: 0 MaxRetryError")
    missing = VClusterPreviewBackend(VClusterSettings(kubeconfig=str(tmp_path / "no-such-kubeconfig")))
    [line] = missing.reap()
    assert line.startswith("leftover previews not searched: ")
