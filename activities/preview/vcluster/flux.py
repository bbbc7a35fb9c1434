"""The Flux flavour: a `HelmRepository` (source.toolkit.fluxcd.io/v1) for the chart and a `HelmRelease`
(helm.toolkit.fluxcd.io/v2) that installs it, both inside the preview's namespace.

Keeping both in the namespace keeps Flux's cross-namespace reference rules out of the way and makes them
easy to find by label. Teardown deletes the HelmRelease first (Flux uninstalls the chart), then the
repository, then the namespace. Ready is the release's `Ready` condition at the current generation.
"""

from __future__ import annotations

from typing import Any

from activities.config import VClusterSettings
from activities.preview.vcluster.gitops_status import ControllerStatus
from activities.preview.vcluster.naming import PreviewIdentity
from activities.preview.vcluster.objects import ObjectRef

SOURCE_API_VERSION = "source.toolkit.fluxcd.io/v1"
RELEASE_API_VERSION = "helm.toolkit.fluxcd.io/v2"
REPOSITORY_NAME = "vcluster-charts"
CHART = "vcluster"


def helm_repository(identity: PreviewIdentity, settings: VClusterSettings) -> dict[str, Any]:
    return {
        "apiVersion": SOURCE_API_VERSION,
        "kind": "HelmRepository",
        "metadata": {
            "name": REPOSITORY_NAME,
            "namespace": identity.namespace,
            "labels": identity.labels(),
            "annotations": identity.annotations(),
        },
        "spec": {"url": settings.chart_repository, "interval": "1h"},
    }


def helm_release(identity: PreviewIdentity, settings: VClusterSettings, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": RELEASE_API_VERSION,
        "kind": "HelmRelease",
        "metadata": {
            "name": identity.name,
            "namespace": identity.namespace,
            "labels": identity.labels(),
            "annotations": identity.annotations(),
        },
        "spec": {
            "interval": "10m",
            "releaseName": identity.release,
            "chart": {
                "spec": {
                    "chart": CHART,
                    "version": settings.chart_version,
                    "sourceRef": {"kind": "HelmRepository", "name": REPOSITORY_NAME, "namespace": identity.namespace},
                    "interval": "1h",
                }
            },
            "install": {"remediation": {"retries": 2}},
            "upgrade": {"remediation": {"retries": 2}},
            "timeout": "10m",
            "values": values,
        },
    }


def release_ref(name: str) -> ObjectRef:
    """The HelmRelease of preview `name` (it lives in the namespace of the same name)."""
    return ObjectRef(api_version=RELEASE_API_VERSION, kind="HelmRelease", name=name, namespace=name)


def repository_ref(name: str) -> ObjectRef:
    return ObjectRef(api_version=SOURCE_API_VERSION, kind="HelmRepository", name=REPOSITORY_NAME, namespace=name)


def release_status(obj: dict[str, Any] | None) -> ControllerStatus:
    """Ready when the `Ready` condition is True for the current generation; Stalled or a failed install fails."""
    if obj is None:
        return ControllerStatus(ready=False, reason="the Flux HelmRelease does not exist (yet)")
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    ready = conditions.get("Ready")
    if ready is None:
        return ControllerStatus(ready=False, reason="Flux has not reported on the HelmRelease yet")
    generation = (obj.get("metadata") or {}).get("generation")
    observed = ready.get("observedGeneration", status.get("observedGeneration"))
    message = ready.get("message") or ready.get("reason") or "no message"
    if ready.get("status") == "True":
        if generation is not None and observed is not None and observed < generation:
            return ControllerStatus(ready=False, reason=f"Flux has not reconciled generation {generation} yet")
        return ControllerStatus(ready=True, reason=f"Flux reports the HelmRelease Ready: {message}")
    # A failed install is retried (install.remediation); only Stalled means Flux has stopped trying.
    failed = conditions.get("Stalled", {}).get("status") == "True"
    said = f"Ready={ready.get('status')} ({ready.get('reason')})"
    return ControllerStatus(ready=False, failed=failed, reason=f"Flux reports {said}: {message}")
