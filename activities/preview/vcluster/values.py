"""The vCluster chart's values for one preview: small, throw-away, fenced in.

An embedded SQLite backing store and no volume claim (nothing outlives the preview), a resource quota and
limit range on the host namespace (a runaway change cannot eat the cluster), the kubeconfig exported with
the in-cluster address of the virtual cluster's Service (so a worker inside the cluster can use it as is),
and sleep after inactivity only when configured: the chart accepts it, but it is an enterprise feature
that an unlicensed vCluster refuses.
"""

from __future__ import annotations

from typing import Any

from activities.config import VClusterSettings
from activities.preview.vcluster.naming import PreviewIdentity

API_PORT = 443  # the chart's Service port for the virtual API server (target port 8443)


def vcluster_values(identity: PreviewIdentity, settings: VClusterSettings) -> dict[str, Any]:
    labels = identity.labels()
    values: dict[str, Any] = {
        "controlPlane": {
            "backingStore": {"database": {"embedded": {"enabled": True}}},
            "statefulSet": {
                "persistence": {"volumeClaim": {"enabled": False}},
                "labels": dict(labels),
                "pods": {"labels": dict(labels)},
            },
            "service": {"labels": dict(labels)},
            # The certificate must name the address the exported kubeconfig uses.
            "proxy": {"extraSANs": [identity.api_host, f"{identity.api_host}.cluster.local"]},
        },
        "policies": {
            "resourceQuota": {"enabled": True, "quota": dict(settings.quota), "labels": dict(labels)},
            "limitRange": {
                "enabled": True,
                "default": dict(settings.limit_default),
                "defaultRequest": dict(settings.limit_default_request),
                "labels": dict(labels),
            },
        },
        "exportKubeConfig": {"server": f"https://{identity.api_host}:{API_PORT}"},
    }
    if settings.sleep_after:
        values["sleep"] = {"auto": {"afterInactivity": settings.sleep_after}}
    return values
