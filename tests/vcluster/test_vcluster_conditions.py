"""The pure judgements of the vCluster backend: controller status, kubeconfig secret, pods, synced Service,
the image's CI check, and the settings read from the environment."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.config import VClusterSettings, parse_duration
from activities.preview.backends import make_preview_backend
from activities.preview.local import LocalPreviewBackend
from activities.preview.vcluster.backend import VClusterPreviewBackend
from activities.preview.vcluster.ci import CheckRun, ImageBuild, image_check
from activities.preview.vcluster.manifests import ServiceTarget
from activities.preview.vcluster.reach import (
    ReachError,
    backing_pod,
    dns_url,
    reach_mode,
    service_port,
    synced_service,
)
from activities.preview.vcluster.readiness import (
    controller_condition,
    kubeconfig_condition,
    pods_condition,
    synced_condition,
)

ARGO = VClusterSettings(controller="argocd")
FLUX = VClusterSettings(controller="flux")
TARGET = ServiceTarget(name="inventory", namespace="default", ports=[80])


def argo(health: str, sync: str, operation: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"health": {"status": health}, "sync": {"status": sync}}
    if operation:
        status["operationState"] = operation
    return {"metadata": {"name": "p"}, "status": status}


def flux(ready: str, reason: str, *, generation: int = 1, observed: int = 1, stalled: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "reason": reason, "message": f"{reason} message",
                   "observedGeneration": observed}]
    if stalled:
        conditions.append({"type": "Stalled", "status": "True", "reason": reason})
    return {"metadata": {"name": "p", "generation": generation}, "status": {"conditions": conditions}}


def test_vcluster_argocd_health_decides_the_controller_condition() -> None:
    assert controller_condition(ARGO, argo("Healthy", "Synced")).ok
    waiting = controller_condition(ARGO, argo("Progressing", "Synced"))
    assert (waiting.ok, waiting.final) == (False, False)
    assert waiting.reason == "Argo CD reports health Progressing, sync Synced"
    failed = controller_condition(ARGO, argo("Missing", "OutOfSync", {"phase": "Failed", "message": "chart not found"}))
    assert (failed.ok, failed.final, failed.reason) == (False, True, "Argo CD sync failed: chart not found")
    missing = controller_condition(ARGO, None)
    assert not missing.ok and "does not exist" in missing.reason


def test_vcluster_flux_ready_condition_decides_the_controller_condition() -> None:
    assert controller_condition(FLUX, flux("True", "InstallSucceeded")).ok
    stale = controller_condition(FLUX, flux("True", "InstallSucceeded", generation=2, observed=1))
    assert not stale.ok and stale.reason == "Flux has not reconciled generation 2 yet"
    retrying = controller_condition(FLUX, flux("False", "InstallFailed"))
    assert (retrying.ok, retrying.final) == (False, False)
    assert retrying.reason == "Flux reports Ready=False (InstallFailed): InstallFailed message"
    assert controller_condition(FLUX, flux("False", "InstallFailed", stalled=True)).final
    assert controller_condition(FLUX, {"metadata": {}, "status": {}}).reason == (
        "Flux has not reported on the HelmRelease yet")


def test_vcluster_kubeconfig_condition_names_what_is_missing() -> None:
    name = "ns/vc-p"
    assert kubeconfig_condition(None, name)[0].reason == "secret ns/vc-p does not exist yet"
    assert kubeconfig_condition({"data": {}}, name)[0].reason == "secret ns/vc-p has no 'config' key"
    assert "not base64" in kubeconfig_condition({"data": {"config": "%%%"}}, name)[0].reason
    junk = base64.b64encode(b"hello").decode()
    not_a_kubeconfig = kubeconfig_condition({"data": {"config": junk}}, name)[0]
    assert not_a_kubeconfig.reason == "secret ns/vc-p does not hold a kubeconfig"
    text = "clusters:\n- cluster: {server: https://p.p.svc:443}\n"
    condition, found = kubeconfig_condition({"data": {"config": base64.b64encode(text.encode()).decode()}}, name)
    assert condition.ok and found == text


def pod(name: str, labels: dict[str, str], *, ready: bool, waiting: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending",
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"name": "app", "state": {"waiting": {"reason": waiting, "message": "m"}}}]
    return {"metadata": {"name": name, "labels": labels}, "status": status,
            "spec": {"containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]}}


def test_vcluster_pods_condition_says_why_the_workload_is_not_ready() -> None:
    service = {"spec": {"selector": {"app": "inventory"}}}
    assert pods_condition(TARGET, None, []).reason == "Service default/inventory does not exist in the virtual cluster"
    assert "has no selector" in pods_condition(TARGET, {"spec": {}}, []).reason
    assert pods_condition(TARGET, service, [pod("other", {"app": "x"}, ready=True)]).reason == (
        "no pod matches Service default/inventory's selector app=inventory")
    pulling = pods_condition(TARGET, service, [pod("inv-1", {"app": "inventory"}, ready=False,
                                                   waiting="ImagePullBackOff")])
    assert not pulling.ok
    assert pulling.reason == ("1 of 1 pod(s) of Service default/inventory not ready: "
                              "inv-1: container app ImagePullBackOff (m)")
    assert pods_condition(TARGET, service, [pod("inv-1", {"app": "inventory"}, ready=True)]).ok


def synced(name: str, object_name: str, object_namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "s2s-x", "annotations": {
        "vcluster.loft.sh/object-name": object_name, "vcluster.loft.sh/object-namespace": object_namespace}},
        "spec": {"selector": {"app": "inventory"}, "ports": [{"port": 80, "targetPort": "http"}]}}


def test_vcluster_synced_service_is_found_by_annotations_only() -> None:
    decoy = {"metadata": {"name": "inventory-x-default-x-s2s-x", "namespace": "s2s-x"}, "spec": {}}
    other_namespace = synced("inventory-x-staging-x-s2s-x", "inventory", "staging")
    real = synced("inventory-x-default-x-0a1b2c3d4e", "inventory", "default")
    assert synced_service([decoy, other_namespace, real], TARGET) is real
    assert not synced_condition(TARGET, [decoy, other_namespace], "s2s-x").ok
    with pytest.raises(ReachError, match="several host Services"):
        synced_service([real, synced("copy", "inventory", "default")], TARGET)


def test_vcluster_port_forward_target_resolves_named_ports_on_ready_pods() -> None:
    service = synced("inventory-x", "inventory", "default")
    port = service["spec"]["ports"][0]
    pods = [pod("not-ready", {"app": "inventory"}, ready=False), pod("ready", {"app": "inventory"}, ready=True)]
    assert backing_pod(service, port, pods) == ("ready", 8080)
    with pytest.raises(ReachError, match="no Ready pod"):
        backing_pod(service, port, pods[:1])


SHA = "a" * 40


def run(name: str, status: str, conclusion: str | None = None, started: int | None = None,
        sha: str = SHA) -> CheckRun:
    when = datetime(2026, 1, 1, 12, started, tzinfo=UTC) if started is not None else None
    return CheckRun(name=name, head_sha=sha, status=status, conclusion=conclusion, started_at=when)


def test_vcluster_image_check_pending_succeeded_failed_missing() -> None:
    def state(*runs: CheckRun) -> tuple[ImageBuild, str]:
        found = image_check(list(runs), check_name="build-image", head_sha=SHA)
        return found.state, found.reason

    assert state(run("build-image", "in_progress")) == (ImageBuild.pending, "check 'build-image' on aaaaaaaaaaaa is "
                                                                            "in_progress")
    assert state(run("build-image", "completed", "success"))[0] is ImageBuild.succeeded
    assert state(run("build-image", "completed", "skipped")) == (
        ImageBuild.failed, "check 'build-image' on aaaaaaaaaaaa concluded skipped (so no image was pushed)")
    # A re-run that succeeded after a failure wins, whatever the order the forge lists them in.
    assert state(run("build-image", "completed", "success", started=5),
                 run("build-image", "completed", "failure", started=1))[0] is ImageBuild.succeeded
    missing = state(run("lint", "completed", "success"), run("build-image", "completed", "success", sha="b" * 40))
    assert missing == (ImageBuild.missing, "no check named 'build-image' on aaaaaaaaaaaa; checks seen on it: lint. "
                                           "Is preview.ci_check the check's name?")


def test_vcluster_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEC2SHIP_GITOPS_CONTROLLER", "flux")
    monkeypatch.setenv("SPEC2SHIP_PREVIEW_TTL", "1h30m")
    monkeypatch.setenv("SPEC2SHIP_VCLUSTER_QUOTA", "requests.cpu=1, limits.memory=2Gi")
    monkeypatch.setenv("SPEC2SHIP_VCLUSTER_SLEEP_AFTER", "20m")
    settings = VClusterSettings.from_env()
    assert (settings.controller, settings.ttl_s, settings.sleep_after) == ("flux", 5400.0, "20m")
    assert settings.quota == {"requests.cpu": "1", "limits.memory": "2Gi"}
    monkeypatch.setenv("SPEC2SHIP_GITOPS_CONTROLLER", "jenkins")
    with pytest.raises(ValueError, match="SPEC2SHIP_GITOPS_CONTROLLER"):
        VClusterSettings.from_env()
    monkeypatch.setenv("SPEC2SHIP_GITOPS_CONTROLLER", "argocd")
    monkeypatch.setenv("SPEC2SHIP_VCLUSTER_QUOTA", "requests.cpu")
    with pytest.raises(ValueError, match="is not KEY=QUANTITY"):
        VClusterSettings.from_env()
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("SPEC2SHIP_PREVIEW_TTL", "tomorrow")


def test_vcluster_reach_mode_and_in_cluster_address(monkeypatch: pytest.MonkeyPatch) -> None:
    service = synced("inventory-x-default-x-0a1b2c3d4e", "inventory", "default")
    assert dns_url(service, service_port(service, None)) == "http://inventory-x-default-x-0a1b2c3d4e.s2s-x.svc:80"
    with pytest.raises(ReachError, match=r"has no port 8080 \(it has 80\); fix preview\.port"):
        service_port(service, 8080)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert reach_mode(VClusterSettings()) == "port-forward"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert reach_mode(VClusterSettings()) == "dns"
    assert reach_mode(VClusterSettings(reach="port-forward")) == "port-forward"


def test_vcluster_backend_is_chosen_by_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPEC2SHIP_PREVIEW_BACKEND", raising=False)
    assert isinstance(make_preview_backend(tmp_path, "w1"), LocalPreviewBackend)
    monkeypatch.setenv("SPEC2SHIP_PREVIEW_BACKEND", "vcluster")
    monkeypatch.setenv("SPEC2SHIP_GITOPS_CONTROLLER", "flux")
    chosen = make_preview_backend(tmp_path, "w1")
    assert isinstance(chosen, VClusterPreviewBackend)
    assert (chosen.settings.controller, chosen.owner) == ("flux", "w1")
    monkeypatch.setenv("SPEC2SHIP_PREVIEW_BACKEND", "k8s")
    with pytest.raises(ValueError, match="use one of local, vcluster"):
        make_preview_backend(tmp_path, "w1")
