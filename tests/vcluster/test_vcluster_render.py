"""What the vCluster backend would create, checked against the published schemas (no cluster needed).

Argo CD's Application and Flux's HelmRelease / HelmRepository are validated against their CRD schemas,
the chart values against the vCluster chart's values.schema.json, and core objects with
kubernetes-validate (strict: an unknown field fails).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from vcluster_world import DEPLOYMENT, SERVICE_YAML, schema

from activities.config import VClusterSettings
from activities.preview.vcluster.manifests import ManifestError, files_on_disk, load_manifests
from activities.preview.vcluster.naming import (
    LABEL_EXPIRES,
    LABEL_PR,
    LABEL_SHA,
    MANAGED_BY,
    PreviewIdentity,
    expires_of,
)
from activities.preview.vcluster.render import PreviewPlan, plan_preview
from activities.preview.vcluster.values import vcluster_values
from specs.models import PreviewConfig

SHA = "3f5d2c1b0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CRD_SCHEMAS = {
    "Application": "argoproj.io_application_v1alpha1.json",
    "HelmRelease": "helm.toolkit.fluxcd.io_helmrelease_v2.json",
    "HelmRepository": "source.toolkit.fluxcd.io_helmrepository_v1.json",
}
SIDECAR = DEPLOYMENT.replace(
    "          ports: [{containerPort: 8080, name: http}]\n",
    "          ports: [{containerPort: 8080, name: http}]\n"
    "        - name: proxy\n          image: envoyproxy/envoy:v1.31\n",
)


def plan(controller: str, *, files: dict[str, str] | None = None, image: bool = True, **settings: Any) -> PreviewPlan:
    manifests = {"deploy/preview/deployment.yaml": SIDECAR, "deploy/preview/service.yaml": SERVICE_YAML}
    config = PreviewConfig.model_validate(
        {"manifests": "deploy/preview", **({"image": "ghcr.io/acme/inventory:{sha}"} if image else {})}
    )
    return plan_preview(
        config=config, service="inventory", pr=42, sha=SHA, manifest_files=manifests if files is None else files,
        settings=VClusterSettings.model_validate({"controller": controller, **settings}), needs_service=True,
        owner="worker-a", preview_id="spec2ship/inventory/add-items-1", now=NOW,
    )


def crd_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema(CRD_SCHEMAS[obj["kind"]]))
    return [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(obj)]


@pytest.mark.parametrize("controller", ["argocd", "flux"])
def test_vcluster_render_controller_objects_valid_against_crd_schemas(controller: str) -> None:
    rendered = plan(controller)
    kinds = [obj["kind"] for obj in rendered.host_objects]
    flux = ["Namespace", "HelmRepository", "HelmRelease"]
    assert kinds == (["Namespace", "Application"] if controller == "argocd" else flux)
    for obj in rendered.host_objects[1:]:
        assert crd_errors(obj) == [], obj["kind"]


def test_vcluster_argocd_application_installs_the_pinned_chart_into_the_preview_namespace() -> None:
    app = plan("argocd", chart_version="0.36.1", chart_repository="https://charts.example.org").host_objects[1]
    assert app["metadata"]["namespace"] == "argocd"
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    source = app["spec"]["source"]
    assert (source["repoURL"], source["chart"], source["targetRevision"]) == (
        "https://charts.example.org", "vcluster", "0.36.1")
    assert source["helm"]["releaseName"] == app["metadata"]["name"]
    assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc",
                                          "namespace": app["metadata"]["name"]}
    assert "CreateNamespace=false" in app["spec"]["syncPolicy"]["syncOptions"]


def test_vcluster_flux_release_points_at_its_repository() -> None:
    repository, release = plan("flux", chart_version="0.36.1").host_objects[1:]
    chart = release["spec"]["chart"]["spec"]
    assert (chart["chart"], chart["version"]) == ("vcluster", "0.36.1")
    assert chart["sourceRef"] == {"kind": "HelmRepository", "name": repository["metadata"]["name"],
                                  "namespace": repository["metadata"]["namespace"]}
    assert repository["spec"]["url"] == "https://charts.loft.sh"
    assert release["metadata"]["namespace"] == release["spec"]["releaseName"] == release["metadata"]["name"]


@pytest.mark.parametrize("sleep_after", [None, "30m"])
def test_vcluster_values_validate_against_the_chart_schema(sleep_after: str | None) -> None:
    identity = PreviewIdentity.create(service="inventory", pr=42, sha=SHA, ttl_s=3600, now=NOW)
    settings = VClusterSettings(sleep_after=sleep_after, quota={"requests.cpu": "1"}, limit_default={"memory": "1Gi"})
    values = vcluster_values(identity, settings)
    validator = jsonschema.Draft202012Validator(schema("vcluster_values.schema.json"))
    assert [error.message for error in validator.iter_errors(values)] == []
    assert values["controlPlane"]["backingStore"] == {"database": {"embedded": {"enabled": True}}}
    assert values["controlPlane"]["statefulSet"]["persistence"] == {"volumeClaim": {"enabled": False}}
    assert values["policies"]["resourceQuota"]["enabled"] is True
    assert values["policies"]["resourceQuota"]["quota"] == {"requests.cpu": "1"}
    assert values["policies"]["limitRange"]["enabled"] is True
    assert values["policies"]["limitRange"]["default"] == {"memory": "1Gi"}
    name = identity.name
    assert values["exportKubeConfig"]["server"] == f"https://{name}.{name}.svc:443"
    assert f"{name}.{name}.svc" in values["controlPlane"]["proxy"]["extraSANs"]
    assert values.get("sleep") == ({"auto": {"afterInactivity": "30m"}} if sleep_after else None)


def test_vcluster_values_schema_catches_a_misspelt_key() -> None:
    """The check above can fail: the chart's schema refuses keys it does not know."""
    validator = jsonschema.Draft202012Validator(schema("vcluster_values.schema.json"))
    assert list(validator.iter_errors({"controlPlane": {"backingStor": {}}}))


@pytest.mark.parametrize("controller", ["argocd", "flux"])
def test_vcluster_every_created_object_carries_the_spec2ship_labels(controller: str) -> None:
    rendered = plan(controller)
    objects = rendered.host_objects + rendered.virtual_objects
    assert len(rendered.virtual_objects) == 2
    for obj in objects:
        labels = obj["metadata"]["labels"]
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert labels[MANAGED_BY] == "spec2ship", where
        assert labels["spec2ship.dev/service"] == "inventory", where
        assert labels[LABEL_PR] == "42", where
        assert labels[LABEL_SHA] == SHA, where
        assert labels["spec2ship.dev/owner"] == "worker-a", where
        assert expires_of(labels) == datetime(2026, 5, 4, 16, 0, tzinfo=UTC), where
    values = rendered.host_objects[1]["spec"]["source"]["helm"]["valuesObject"] if controller == "argocd" else (
        rendered.host_objects[2]["spec"]["values"])
    for labelled in (values["controlPlane"]["statefulSet"], values["policies"]["resourceQuota"],
                     values["policies"]["limitRange"], values["controlPlane"]["service"]):
        assert labelled["labels"][LABEL_EXPIRES] == rendered.host_objects[0]["metadata"]["labels"][LABEL_EXPIRES]


def test_vcluster_core_objects_pass_kubernetes_validate() -> None:
    rendered = plan("argocd")
    core = [obj for obj in rendered.host_objects + rendered.virtual_objects if "/" not in obj["apiVersion"]
            or obj["apiVersion"].startswith("apps/")]
    assert {obj["kind"] for obj in core} == {"Namespace", "Deployment", "Service"}
    version = kubernetes_validate.latest_version()
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)


def test_vcluster_manifests_run_the_pr_image_and_keep_other_images() -> None:
    rendered = plan("flux")
    deployment = next(obj for obj in rendered.virtual_objects if obj["kind"] == "Deployment")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == [f"ghcr.io/acme/inventory:{SHA}", "envoyproxy/envoy:v1.31"]
    assert rendered.image == f"ghcr.io/acme/inventory:{SHA}"
    assert rendered.target is not None and (rendered.target.name, rendered.target.namespace) == ("inventory", "default")
    assert rendered.notes == []


def test_vcluster_manifests_without_the_image_say_so() -> None:
    other = DEPLOYMENT.replace("ghcr.io/acme/inventory:latest", "ghcr.io/acme/billing:1.0")
    rendered = plan("argocd", files={"deploy/preview/d.yaml": other, "deploy/preview/s.yaml": SERVICE_YAML})
    assert rendered.notes == [f"no container in preview.manifests uses ghcr.io/acme/inventory: the PR's image "
                              f"ghcr.io/acme/inventory:{SHA} would not run"]
    unset = plan("argocd", image=False)
    assert unset.notes == ["preview.image is not set: the manifests are applied as written"]


def test_vcluster_render_without_manifests_still_renders_the_cluster() -> None:
    rendered = plan_preview(
        config=PreviewConfig(start="python -m app --port {port}"), service="inventory", pr=3, sha=SHA,
        manifest_files=None, settings=VClusterSettings(controller="flux"), needs_service=True, now=NOW,
    )
    assert [obj["kind"] for obj in rendered.host_objects] == ["Namespace", "HelmRepository", "HelmRelease"]
    assert rendered.virtual_objects == []
    assert rendered.notes == ["preview.manifests is not set: the virtual cluster would be created, "
                              "but nothing deployed into it"]
    documents = list(yaml.safe_load_all(rendered.to_yaml()))
    assert [doc["kind"] for doc in documents] == ["Namespace", "HelmRepository", "HelmRelease"]


def test_vcluster_names_fit_kubernetes_limits() -> None:
    identity = PreviewIdentity.create(service="a-very-long-service-name-that-keeps-going-and-going", pr=123456,
                                      sha=SHA, ttl_s=60, prefix="preview", now=NOW)
    other = identity.model_copy(update={"service": "a-very-long-service-name-that-keeps-going-and-going-too"})
    assert len(identity.name) <= 40 and len(identity.kubeconfig_secret) <= 63
    assert identity.name != other.name  # the hash keeps shortened names apart
    assert identity.name == identity.name.lower().strip("-")
    with pytest.raises(ValueError, match="hexadecimal"):
        PreviewIdentity.create(service="x", pr=1, sha="HEAD", ttl_s=1)


def test_vcluster_manifest_problems_name_the_file_and_document(tmp_path: Path) -> None:
    labels = {"a": "b"}
    cases = {
        "kind: [unclosed\n": "deploy/x.yaml: line 2 is not valid YAML",
        "apiVersion: v1\nmetadata: {name: a}\n": "deploy/x.yaml: document 1: has no kind",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n":
            "deploy/x.yaml: document 2: Secret has no metadata.name",
        "- just\n- a list\n": "deploy/x.yaml: document 1: expected a Kubernetes object",
    }
    for text, message in cases.items():
        with pytest.raises(ManifestError, match=message.replace("[", r"\[")):
            load_manifests({"deploy/x.yaml": text}, labels=labels, image_repository=None, image=None)
    with pytest.raises(ManifestError, match="is not a folder"):
        files_on_disk(tmp_path, "deploy/missing")
    (tmp_path / "outside").mkdir()
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "deploy").symlink_to(tmp_path / "outside")
    with pytest.raises(ManifestError, match="leads out of the repository"):
        files_on_disk(tmp_path / "repo", "deploy")
