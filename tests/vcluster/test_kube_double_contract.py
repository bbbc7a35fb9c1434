"""The fake Kubernetes API server held to the official client: its typed models must parse every answer,
its status codes must be Kubernetes' own, and custom resources must pass the published CRD schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vcluster_world import KubeWorld

NS = "contract"


@pytest.fixture
def api(argo_world: KubeWorld) -> Iterator[k8s.ApiClient]:
    client = k8s.ApiClient(k8s.Configuration(host=argo_world.host_url))
    yield client
    client.close()


def status_of(call: object) -> int:
    with pytest.raises(ApiException) as raised:
        call()  # type: ignore[operator]
    return int(raised.value.status)


def test_vcluster_double_speaks_kubernetes_status_codes(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    created = core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS, labels={"tier": "a"})))
    assert created.metadata.name == NS and created.status.phase == "Active"
    assert status_of(lambda: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))) == 409
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="s"), string_data={"a": "b"})
    assert status_of(lambda: core.create_namespaced_secret("missing", secret)) == 404
    assert status_of(lambda: core.read_namespaced_secret("s", NS)) == 404
    core.create_namespaced_secret(NS, secret)
    core.replace_namespaced_secret("s", NS, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="s"), data={"a": "Yg=="}))
    assert core.read_namespaced_secret("s", NS).data == {"a": "Yg=="}
    core.delete_namespace(NS)
    assert status_of(lambda: core.create_namespaced_config_map(NS, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="late")))) in (403, 404)  # terminating, or already gone


def test_vcluster_double_filters_by_label_selectors(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    for name, labels in {"a": {"tier": "web", "team": "x"}, "b": {"tier": "db"}, "c": {"team": "y"}}.items():
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=f"sel-{name}", labels=labels)))

    def names(selector: str) -> list[str]:
        return sorted(ns.metadata.name for ns in core.list_namespace(label_selector=selector).items)

    assert names("tier=web") == ["sel-a"]
    assert names("tier!=web,team") == ["sel-c"]
    assert names("tier in (web, db)") == ["sel-a", "sel-b"]
    assert names("tier notin (web),!team") == ["argocd", "default", "sel-b"]  # notin holds where the key is absent
    assert names("tier,tier notin (web),!team") == ["sel-b"]
    assert status_of(lambda: core.list_namespace(label_selector="tier in web")) == 400


def test_vcluster_double_server_side_apply_and_typed_deployments(api: k8s.ApiClient) -> None:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "1"}},
                  "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                      "metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    assert status_of(lambda: apps.patch_namespaced_deployment(
        "d", NS, deployment, _content_type="application/apply-patch+yaml")) == 400  # no fieldManager
    apply = "application/apply-patch+yaml"
    apps.patch_namespaced_deployment("d", NS, deployment, field_manager="t", _content_type=apply)
    deployment["metadata"]["labels"] = {"b": "2"}  # the manager stops applying label a
    applied = apps.patch_namespaced_deployment("d", NS, deployment, field_manager="t",
                                               _content_type="application/apply-patch+yaml")
    assert applied.metadata.labels == {"b": "2"}
    assert [entry.manager for entry in applied.metadata.managed_fields] == ["t"]
    assert apps.read_namespaced_deployment("d", NS).spec.template.spec.containers[0].image == "i:1"


def test_vcluster_double_validates_custom_resources_against_the_crd_schema(api: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(api)
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "a"},
           "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
                    "source": {"repoURL": "https://charts.loft.sh", "chart": "vcluster", "targetRevison": "1"}}}
    assert status_of(lambda: custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", app)) == 422
    app["spec"]["source"]["targetRevision"] = app["spec"]["source"].pop("targetRevison")
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd", "applications", app)
    listed = custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd", "applications")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]


async def test_vcluster_double_pods_logs_and_events_parse_as_typed_models(argo_world: KubeWorld) -> None:
    world = argo_world
    world.double.knobs.pods_ready = False
    task = asyncio.create_task(world.backend().run(world.request(ready_timeout=30), lambda _: None))
    async with asyncio.timeout(10):
        while not world.virtual.list("v1", "Pod"):
            await asyncio.sleep(0.02)
    virtual = k8s.ApiClient(k8s.Configuration(host=f"http://{world.double.virtual_address}"))
    core = k8s.CoreV1Api(virtual)
    [pod] = core.list_namespaced_pod("default", label_selector="app=inventory").items
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    assert core.read_namespaced_pod_log(pod.metadata.name, "default", tail_lines=1).startswith("app log line 2")
    [event] = core.list_namespaced_event("default").items
    assert event.reason == "Pulled" and event.involved_object.name == pod.metadata.name
    assert k8s.VersionApi(virtual).get_code().git_version == "v1.32.1"
    virtual.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
