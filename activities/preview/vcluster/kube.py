"""The Kubernetes API calls of the preview backend, through the official `kubernetes` client.

Objects stay plain dicts (what manifests and custom resources are anyway); paths come from API discovery,
as kubectl finds them, so any kind a manifest names can be applied. Server-side apply is a PATCH with
`application/apply-patch+yaml` and a field manager, which makes every apply idempotent: a retried
activity re-applies the same objects without conflict. Calls are blocking; the backend runs them in a
thread.
"""

from __future__ import annotations

import json
import os
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from activities.config import VClusterSettings
from activities.preview.vcluster.objects import ObjectRef, ref_of

FIELD_MANAGER = "spec2ship"
_TIMEOUT = (5, 30)  # connect, read: a hung API server must not hold a worker thread for long
_AUTH = ["BearerToken"]


class KubeError(RuntimeError):
    """An API call failed; carries the HTTP status and Kubernetes' own message, and what was asked."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: {status} {message}".strip())
        self.what = what
        self.status = status
        self.message = message


class Resource(BaseModel):
    """Where a kind lives in the API, as discovery says."""

    base: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


def host_api_client(settings: VClusterSettings) -> k8s.ApiClient:
    """The host cluster: an explicit kubeconfig, else the pod's service account, else ~/.kube/config."""
    if settings.kubeconfig:
        return k8s_config.new_client_from_config(config_file=settings.kubeconfig, context=settings.kube_context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    return k8s_config.new_client_from_config(context=settings.kube_context)


def kubeconfig_client(text: str, *, server: str | None = None, tls_server_name: str | None = None) -> k8s.ApiClient:
    """A client from a kubeconfig's text (the `vc-<name>` secret), optionally aimed at another address
    (a port-forward) while TLS still checks the certificate against the original name."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"the kubeconfig is not YAML: {error}") from None
    if not isinstance(document, dict) or not document.get("clusters"):
        raise ValueError("the kubeconfig names no cluster")
    if server is not None:
        for entry in document["clusters"]:
            cluster = entry.get("cluster") or {}
            if tls_server_name:
                cluster["tls-server-name"] = tls_server_name
            cluster["server"] = server
    return k8s_config.new_client_from_config_dict(document)


def kubeconfig_server(text: str) -> str:
    """The server address of the kubeconfig's current context (the first cluster when it names none)."""
    document = yaml.safe_load(text)
    clusters = {c.get("name"): c.get("cluster") or {} for c in document.get("clusters") or []}
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    current = contexts.get(document.get("current-context"), {})
    cluster = clusters.get(current.get("cluster")) or next(iter(clusters.values()), {})
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ValueError("the kubeconfig's cluster has no server address")
    return server


class KubeApi:
    """Plain-dict CRUD and server-side apply over one cluster's API."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api_client = api_client
        self._resources: dict[tuple[str, str], Resource] = {}

    def close(self) -> None:
        self.api_client.close()

    # --- transport ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers, body=body,
            auth_settings=_AUTH,
        )
        what = f"{method} {path}"
        try:
            response = self.api_client.call_api(*params, _request_timeout=_TIMEOUT)
            response.read()
            return self.api_client.response_deserialize(response, {"2XX": "object"}).data
        except ApiException as error:
            raise KubeError(what, error.status or 0, _status_message(error)) from None
        except Exception as error:  # urllib3 connection errors and the like: the cluster is not answering
            raise KubeError(what, 0, f"{type(error).__name__}: {error}") from None

    def version(self) -> dict[str, Any]:
        answer = self.request("GET", "/version")
        if not isinstance(answer, dict) or "gitVersion" not in answer:
            raise KubeError("GET /version", 0, "the answer carries no gitVersion")
        return answer

    # --- discovery ---------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.request("GET", base)
            for item in (listing or {}).get("resources") or []:
                if "/" in item.get("name", ""):
                    continue  # a subresource such as pods/log
                self._resources[(api_version, item["kind"])] = Resource(
                    base=base, plural=item["name"], namespaced=bool(item.get("namespaced"))
                )
            if key not in self._resources:
                raise KubeError(f"GET {base}", 404, f"the cluster serves no {kind} in {api_version}")
        return self._resources[key]

    def path(self, ref: ObjectRef, *, named: bool = True) -> str:
        resource = self.resource(ref.api_version, ref.kind)
        parts = [resource.base]
        if resource.namespaced:
            if not ref.namespace:
                raise ValueError(f"{ref.kind} {ref.name} is namespaced; give it a namespace")
            parts += ["namespaces", ref.namespace]
        parts.append(resource.plural)
        if named:
            parts.append(ref.name)
        return "/".join(parts)

    # --- objects -----------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            found = self.request("GET", self.path(ref))
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def list_objects(
        self, api_version: str, kind: str, *, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind, in one namespace or (namespace None) all of them, matching a label selector."""
        resource = self.resource(api_version, kind)
        path = (
            f"{resource.base}/namespaces/{namespace}/{resource.plural}"
            if resource.namespaced and namespace
            else f"{resource.base}/{resource.plural}"
        )
        answer = self.request("GET", path, query=[("labelSelector", selector)] if selector else None)
        items = (answer or {}).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def apply(self, obj: dict[str, Any], *, default_namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply; spec2ship owns the fields it sets, and takes them over from anyone else (force)."""
        ref = ref_of(obj)
        resource = self.resource(ref.api_version, ref.kind)
        if resource.namespaced and not ref.namespace:
            ref = ref.model_copy(update={"namespace": default_namespace or "default"})
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": ref.namespace}}
        answer = self.request(
            "PATCH",
            self.path(ref),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return answer if isinstance(answer, dict) else {}

    def delete(self, ref: ObjectRef) -> bool:
        """Ask for deletion (dependents in the background); False when it was already gone."""
        try:
            self.request(
                "DELETE", self.path(ref), body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                "propagationPolicy": "Background"}
            )
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def pod_log(self, namespace: str, pod: str, container: str, *, tail_lines: int, limit_bytes: int) -> str:
        return str(
            k8s.CoreV1Api(self.api_client).read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=tail_lines, limit_bytes=limit_bytes,
                _request_timeout=_TIMEOUT,
            )
        )


def _status_message(error: ApiException) -> str:
    """Kubernetes' Status message when the body is one, else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.reason or "")
