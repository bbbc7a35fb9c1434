"""How a worker reaches the service of a preview: the host Service that vCluster synced, found by the
annotations vCluster puts on it, never by the name vCluster happens to give it (names are shortened and
hashed when long, and a same-named Service may belong to someone else).

Inside the cluster the worker uses the Service's DNS name; outside it forwards a local port to a pod
behind the Service through the API server, as `kubectl port-forward` does.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from activities.config import VClusterSettings
from activities.preview.vcluster.manifests import ServiceTarget

OBJECT_NAME = "vcluster.loft.sh/object-name"
OBJECT_NAMESPACE = "vcluster.loft.sh/object-namespace"


class ReachError(RuntimeError):
    """The synced Service exists but cannot be reached (no such port, no ready pod behind it)."""


def reach_mode(settings: VClusterSettings) -> Literal["dns", "port-forward"]:
    if settings.reach != "auto":
        return settings.reach
    return "dns" if os.environ.get("KUBERNETES_SERVICE_HOST") else "port-forward"


def synced_service(host_services: list[dict[str, Any]], target: ServiceTarget) -> dict[str, Any] | None:
    """The host Service whose annotations say it is `target`; several (should not happen) is an error."""
    found = [
        service
        for service in host_services
        if ((service.get("metadata") or {}).get("annotations") or {}).get(OBJECT_NAME) == target.name
        and ((service.get("metadata") or {}).get("annotations") or {}).get(OBJECT_NAMESPACE) == target.namespace
    ]
    if len(found) > 1:
        names = ", ".join(service["metadata"]["name"] for service in found)
        raise ReachError(f"several host Services claim to be {target.namespace}/{target.name}: {names}")
    return found[0] if found else None


def service_port(service: dict[str, Any], wanted: int | None) -> dict[str, Any]:
    """The port entry to use: the one numbered `wanted`, else the first."""
    ports = [port for port in (service.get("spec") or {}).get("ports") or [] if isinstance(port, dict)]
    if not ports:
        raise ReachError(f"host Service {service['metadata']['name']} exposes no port")
    if wanted is None:
        return ports[0]
    for port in ports:
        if port.get("port") == wanted:
            return port
    offered = ", ".join(str(port.get("port")) for port in ports)
    raise ReachError(f"host Service {service['metadata']['name']} has no port {wanted} (it has {offered}); "
                     "fix preview.port")


def dns_url(service: dict[str, Any], port: dict[str, Any]) -> str:
    meta = service["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc:{port['port']}"


def backing_pod(service: dict[str, Any], port: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str, int]:
    """A Ready pod behind the Service and the container port its `targetPort` means (named ports resolved)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    target = port.get("targetPort", port.get("port"))
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        conditions = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        if conditions.get("Ready") != "True":
            continue
        if isinstance(target, int):
            return pod["metadata"]["name"], target
        for container in (pod.get("spec") or {}).get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == target:
                    return pod["metadata"]["name"], int(declared["containerPort"])
    raise ReachError(f"no Ready pod behind host Service {service['metadata']['name']} serves port {target}")
