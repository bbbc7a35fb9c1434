"""A controller double that plays Argo CD or Flux, the vCluster chart and vCluster's syncer on two fake API
servers: the host cluster and the virtual cluster.

For each spec2ship release (an Argo CD Application or a Flux HelmRelease) it checks the chart values
against the chart's published values schema, "installs" the chart (the API Service and pod, the
`vc-<release>` kubeconfig secret pointing at the second fake server, with the address the values ask
for) and reports the release healthy. Inside the virtual cluster it plays the controllers (a Deployment
gets pods, Ready when some local server plays their image) and vCluster's syncer (pods and Services are
copied to the host namespace, named the way vCluster names them and annotated with where they came
from). When a release is deleted it uninstalls and clears the finalizer, as the real controllers do.

Knobs take any one of these away, so a test can see the backend notice. Each pod's address is a local
TCP server (annotation `fake.spec2ship.dev/backend`), which the fake API server's port-forward dials.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from doubles.kube_server import BACKEND_ANNOTATION
from doubles.kube_state import ApiError, FakeCluster

ARGO = ("argoproj.io/v1alpha1", "Application")
FLUX = ("helm.toolkit.fluxcd.io/v2", "HelmRelease")
ARGO_FINALIZER = "resources-finalizer.argocd.argoproj.io"
FLUX_FINALIZER = "finalizers.fluxcd.io"
OBJECT_NAME = "vcluster.loft.sh/object-name"
OBJECT_NAMESPACE = "vcluster.loft.sh/object-namespace"
MANAGED_BY = "vcluster.loft.sh/managed-by"
NAMESPACE_LABEL = "vcluster.loft.sh/namespace"


@dataclass
class Knobs:
    healthy: bool = True  # the controller reports the release healthy / Ready
    write_kubeconfig: bool = True  # vCluster writes the vc-<release> secret
    pods_ready: bool = True  # the workload's pods become Ready (when their image is known)
    sync_services: bool = True  # vCluster copies Services to the host
    hashed_names: bool = False  # synced objects get vCluster's shortened, hashed names
    finalize: bool = True  # the controller uninstalls and clears its finalizer when the release is deleted
    log_lines: int = 3  # lines each workload container logs
    decoy_address: str = ""  # when set, a Service with the computed (unhashed) name leads to this server instead


@dataclass
class GitOpsDouble:
    host: FakeCluster
    virtual: FakeCluster
    virtual_address: str  # host:port of the fake virtual API server
    images: dict[str, str]  # image reference -> host:port of the local server that plays it
    values_schema: dict[str, Any]
    argocd_namespace: str = "argocd"
    knobs: Knobs = field(default_factory=Knobs)
    installed: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, release) -> flavour
    values_errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="gitops-double")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(ApiError):
                self.reconcile()

    # --- releases --------------------------------------------------------------------------------

    def reconcile(self) -> None:
        # Only spec2ship's releases: tests also store other objects of these kinds to probe the API server.
        mine = "app.kubernetes.io/managed-by=spec2ship"
        releases = [(ARGO, obj) for obj in self.host.list(*ARGO, self.argocd_namespace, mine)]
        releases += [(FLUX, obj) for obj in self.host.list(*FLUX, None, mine)]
        for kind, obj in releases:
            meta = obj["metadata"]
            if kind == ARGO:
                namespace = obj["spec"]["destination"]["namespace"]
                release = obj["spec"]["source"]["helm"]["releaseName"]
                values = obj["spec"]["source"]["helm"].get("valuesObject") or {}
            else:
                namespace = obj["spec"].get("targetNamespace") or meta["namespace"]
                release = obj["spec"].get("releaseName") or meta["name"]
                values = obj["spec"].get("values") or {}
            if meta.get("deletionTimestamp"):
                if self.knobs.finalize:
                    self._uninstall(namespace, release)
                    finalizer = ARGO_FINALIZER if kind == ARGO else FLUX_FINALIZER
                    self.host.remove_finalizer(*kind, meta["namespace"], meta["name"], finalizer)
                continue
            if kind == FLUX and FLUX_FINALIZER not in meta.get("finalizers", []):
                self.host.patch(*kind, meta["namespace"], meta["name"],
                                {"metadata": {"finalizers": [*meta.get("finalizers", []), FLUX_FINALIZER]}})
            error = self._values_error(values)
            if error is None:
                self._install(namespace, release, values, "argocd" if kind == ARGO else "flux")
            self._report(kind, obj, error)
        for namespace, release in list(self.installed):
            self._sync(namespace, release)

    def _values_error(self, values: dict[str, Any]) -> str | None:
        errors = list(jsonschema.Draft202012Validator(self.values_schema).iter_errors(values))
        if not errors:
            return None
        message = f"values don't meet the specifications of the schema: {errors[0].message}"
        self.values_errors.append(message)
        return message

    def _report(self, kind: tuple[str, str], obj: dict[str, Any], error: str | None) -> None:
        meta = obj["metadata"]
        healthy = self.knobs.healthy and error is None
        if kind == ARGO:
            status: dict[str, Any] = {
                "health": {"status": "Healthy" if healthy else "Progressing"},
                "sync": {"status": "Synced" if healthy else "OutOfSync"},
            }
            if error:
                status["operationState"] = {"phase": "Failed", "message": error}
        else:
            ready = {"type": "Ready", "status": "True" if healthy else "False",
                     "reason": "InstallSucceeded" if healthy else ("InstallFailed" if error else "Progressing"),
                     "message": error or ("Helm install succeeded" if healthy else "Running 'install' action"),
                     "observedGeneration": meta.get("generation", 1)}
            status = {"observedGeneration": meta.get("generation", 1), "conditions": [ready]}
            if error:
                status["conditions"].append({"type": "Stalled", "status": "True", "reason": "InstallFailed",
                                             "message": error})
        if obj.get("status") != status:
            self.host.set_status(*kind, meta["namespace"], meta["name"], status)

    def _install(self, namespace: str, release: str, values: dict[str, Any], flavour: str) -> None:
        if self.host.get("v1", "Namespace", "", namespace) is None:
            return
        self.installed[(namespace, release)] = flavour
        labels = {"app": "vcluster", "release": release}
        self._ensure({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": release, "namespace": namespace, "labels": labels},
                      "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": 8443,
                                                              "protocol": "TCP"}]}})
        self._ensure(_pod(f"{release}-0", namespace, labels, "syncer", "ghcr.io/loft-sh/vcluster-pro:0.36.1", 8443,
                          self.virtual_address, ready=True))
        if self.knobs.write_kubeconfig:
            server = ((values.get("exportKubeConfig") or {}).get("server")) or "https://localhost:8443"
            # The fake virtual API server speaks plain HTTP on the address the values ask for.
            config = _kubeconfig(server.replace("https://", "http://", 1), release)
            self._ensure({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                          "metadata": {"name": f"vc-{release}", "namespace": namespace},
                          "data": {"config": base64.b64encode(config.encode()).decode()}})

    def _uninstall(self, namespace: str, release: str) -> None:
        self.installed.pop((namespace, release), None)
        for kind in ("Pod", "Service", "Secret"):
            for obj in self.host.list("v1", kind, namespace):
                with contextlib.suppress(ApiError):
                    self.host.delete("v1", kind, namespace, obj["metadata"]["name"])

    def _ensure(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if self.host.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]) is None:
            with contextlib.suppress(ApiError):  # the namespace may be terminating meanwhile
                self.host.create(obj)

    # --- the virtual cluster ---------------------------------------------------------------------

    def _sync(self, namespace: str, release: str) -> None:
        for deployment in self.virtual.list("apps/v1", "Deployment"):
            self._run_deployment(deployment)
        for pod in self.virtual.list("v1", "Pod"):
            self._sync_pod(pod, namespace, release)
        if self.knobs.sync_services:
            for service in self.virtual.list("v1", "Service"):
                self._sync_service(service, namespace, release)

    def _run_deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, template = meta["namespace"], spec["template"]
        container = template["spec"]["containers"][0]
        image = container["image"]
        known = image in self.images
        ready = known and self.knobs.pods_ready
        pod_name = f"{meta['name']}-{hashlib.sha256(image.encode()).hexdigest()[:5]}"
        for old in self.virtual.list("v1", "Pod", namespace):
            owner = (old["metadata"].get("annotations") or {}).get("fake.spec2ship.dev/owner")
            if owner == meta["name"] and old["metadata"]["name"] != pod_name:
                self.virtual.delete("v1", "Pod", namespace, old["metadata"]["name"])
        ports = container.get("ports") or [{"containerPort": 8080}]
        pod = _pod(pod_name, namespace, template["metadata"].get("labels") or {}, container["name"], image, ports,
                   self.images.get(image, ""), ready=ready)
        pod["metadata"]["annotations"]["fake.spec2ship.dev/owner"] = meta["name"]
        if not known:
            pod["status"]["containerStatuses"][0]["state"] = {"waiting": {
                "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
        existing = self.virtual.get("v1", "Pod", namespace, pod_name)
        if existing is None:
            self.virtual.create(pod)
            self.virtual.logs[(namespace, pod_name, container["name"])] = "".join(
                f"{container['name']} log line {i} for {image}\n" for i in range(self.knobs.log_lines))
            self._event(namespace, pod_name, "Pulled" if known else "Failed",
                        f'Successfully pulled image "{image}"' if known else f'Failed to pull image "{image}"',
                        "Normal" if known else "Warning")
        elif existing.get("status") != pod["status"]:
            self.virtual.set_status("v1", "Pod", namespace, pod_name, pod["status"])
        replicas = spec.get("replicas", 1)
        status = {"observedGeneration": meta.get("generation", 1), "replicas": replicas,
                  "updatedReplicas": replicas, "readyReplicas": replicas if ready else 0,
                  "availableReplicas": replicas if ready else 0,
                  "conditions": [{"type": "Available", "status": "True" if ready else "False",
                                  "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable"}]}
        if deployment.get("status") != status:
            self.virtual.set_status("apps/v1", "Deployment", namespace, meta["name"], status)

    def _event(self, namespace: str, pod: str, reason: str, message: str, kind: str) -> None:
        name = f"{pod}.{reason.lower()}"
        if self.virtual.get("v1", "Event", namespace, name) is None:
            self.virtual.create({"apiVersion": "v1", "kind": "Event",
                                 "metadata": {"name": name, "namespace": namespace},
                                 "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace},
                                 "reason": reason, "message": message, "type": kind, "count": 1,
                                 "lastTimestamp": "2026-01-01T00:00:00Z"})

    def host_name(self, name: str, namespace: str, release: str) -> str:
        """vCluster's host name for a synced object: name-x-namespace-x-release, hashed when asked to."""
        computed = f"{name}-x-{namespace}-x-{release}"
        if not self.knobs.hashed_names:
            return computed
        return f"{name}-x-{namespace}-x-{hashlib.sha256(computed.encode()).hexdigest()[:10]}"

    def _sync_pod(self, pod: dict[str, Any], namespace: str, release: str) -> None:
        meta = pod["metadata"]
        name = self.host_name(meta["name"], meta["namespace"], release)
        synced = {**pod, "metadata": {
            "name": name, "namespace": namespace,
            "labels": {**(meta.get("labels") or {}), NAMESPACE_LABEL: meta["namespace"], MANAGED_BY: release},
            "annotations": {**(meta.get("annotations") or {}), OBJECT_NAME: meta["name"],
                            OBJECT_NAMESPACE: meta["namespace"]}}}
        existing = self.host.get("v1", "Pod", namespace, name)
        if existing is None:
            self._ensure(synced)
        elif existing.get("status") != pod.get("status"):
            self.host.set_status("v1", "Pod", namespace, name, pod.get("status") or {})

    def _sync_service(self, service: dict[str, Any], namespace: str, release: str) -> None:
        meta = service["metadata"]
        if meta["namespace"] == "default" and meta["name"] == "kubernetes":
            return
        if self.knobs.decoy_address:
            self._decoy(f"{meta['name']}-x-{meta['namespace']}-x-{release}", namespace, service)
        selector = service.get("spec", {}).get("selector") or {}
        self._ensure({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": self.host_name(meta["name"], meta["namespace"], release), "namespace": namespace,
            "labels": {MANAGED_BY: release},
            "annotations": {OBJECT_NAME: meta["name"], OBJECT_NAMESPACE: meta["namespace"]}},
            "spec": {"selector": {**selector, NAMESPACE_LABEL: meta["namespace"], MANAGED_BY: release},
                     "ports": service.get("spec", {}).get("ports") or []}})


    def _decoy(self, name: str, namespace: str, service: dict[str, Any]) -> None:
        """Someone else's Service under the name a backend would compute, with a ready pod behind it."""
        labels = {"app": "decoy"}
        self._ensure({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                      "spec": {"selector": labels, "ports": service.get("spec", {}).get("ports") or []}})
        self._ensure(_pod(f"{name}-decoy", namespace, labels, "app", "decoy:1", [{"name": "http",
                          "containerPort": 8080}], self.knobs.decoy_address, ready=True))


def _pod(name: str, namespace: str, labels: dict[str, str], container: str, image: str,
         ports: int | list[dict[str, Any]], backend: str, *, ready: bool) -> dict[str, Any]:
    declared = [{"containerPort": ports, "protocol": "TCP"}] if isinstance(ports, int) else ports
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    state = running if ready else {"waiting": {"reason": "ContainerCreating"}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "annotations": {BACKEND_ANNOTATION: backend} if backend else {}},
            "spec": {"containers": [{"name": container, "image": image,
                                     "ports": declared}]},
            "status": {"phase": "Running" if ready else "Pending", "conditions": [condition],
                       "containerStatuses": [{"name": container, "image": image, "ready": ready,
                                              "restartCount": 0, "imageID": "", "state": state}]}}


def _kubeconfig(server: str, release: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": release,
        "clusters": [{"name": release, "cluster": {"server": server}}],
        "contexts": [{"name": release, "context": {"cluster": release, "user": release}}],
        "users": [{"name": release, "user": {"token": "fake-virtual-cluster-token"}}],
    })
