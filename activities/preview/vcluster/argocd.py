"""The Argo CD flavour: one `Application` (argoproj.io/v1alpha1) that installs the vCluster chart.

The Application lives in Argo CD's own namespace and points at the preview's namespace. Its
`resources-finalizer` makes deleting it delete what it installed first, so teardown is: delete the
Application, wait until it is gone, then delete the namespace. Healthy and Synced means installed.
"""

from __future__ import annotations

from typing import Any

from activities.config import VClusterSettings
from activities.preview.vcluster.gitops_status import ControllerStatus
from activities.preview.vcluster.naming import PreviewIdentity
from activities.preview.vcluster.objects import ObjectRef

API_VERSION = "argoproj.io/v1alpha1"
KIND = "Application"
CASCADE_FINALIZER = "resources-finalizer.argocd.argoproj.io"
CHART = "vcluster"


def application(identity: PreviewIdentity, settings: VClusterSettings, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": identity.name,
            "namespace": settings.argocd_namespace,
            "labels": identity.labels(),
            "annotations": identity.annotations(),
            "finalizers": [CASCADE_FINALIZER],
        },
        "spec": {
            "project": settings.argocd_project,
            "source": {
                "repoURL": settings.chart_repository,
                "chart": CHART,
                "targetRevision": settings.chart_version,
                "helm": {"releaseName": identity.release, "valuesObject": values},
            },
            "destination": {"server": settings.argocd_destination, "namespace": identity.namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                # spec2ship makes (and labels) the namespace; Argo CD must not own it.
                "syncOptions": ["CreateNamespace=false"],
                "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}},
            },
        },
    }


def application_ref(name: str, settings: VClusterSettings) -> ObjectRef:
    return ObjectRef(api_version=API_VERSION, kind=KIND, name=name, namespace=settings.argocd_namespace)


def application_status(obj: dict[str, Any] | None) -> ControllerStatus:
    """Ready when Argo CD says Healthy and Synced; a failed sync operation is reported with its message."""
    if obj is None:
        return ControllerStatus(ready=False, reason="the Argo CD Application does not exist (yet)")
    status = obj.get("status") or {}
    health = (status.get("health") or {}).get("status") or "Unknown"
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    operation = status.get("operationState") or {}
    phase = operation.get("phase")
    if phase in {"Failed", "Error"}:
        message = operation.get("message") or "no message"
        return ControllerStatus(ready=False, failed=True, reason=f"Argo CD sync {phase.lower()}: {message}")
    if health == "Healthy" and sync == "Synced":
        return ControllerStatus(ready=True, reason="Argo CD reports the Application Healthy and Synced")
    condition = next((c.get("message") for c in status.get("conditions") or [] if c.get("message")), None)
    detail = f" ({condition})" if condition else ""
    # Degraded is not final: pods that crash at first make the release Degraded until they settle.
    return ControllerStatus(ready=False, reason=f"Argo CD reports health {health}, sync {sync}{detail}")
