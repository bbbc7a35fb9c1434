"""One interface over the two GitOps flavours, chosen by `VClusterSettings.controller`."""

from __future__ import annotations

from typing import Any

from activities.config import VClusterSettings
from activities.preview.vcluster import argocd, flux
from activities.preview.vcluster.gitops_status import ControllerStatus
from activities.preview.vcluster.naming import PreviewIdentity
from activities.preview.vcluster.objects import ObjectRef


def controller_objects(
    identity: PreviewIdentity, settings: VClusterSettings, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """What the backend applies to the host for the controller to act on, in apply order."""
    if settings.controller == "argocd":
        return [argocd.application(identity, settings, values)]
    return [flux.helm_repository(identity, settings), flux.helm_release(identity, settings, values)]


def release_ref(name: str, settings: VClusterSettings) -> ObjectRef:
    """The object whose status says whether the virtual cluster of preview `name` is installed."""
    if settings.controller == "argocd":
        return argocd.application_ref(name, settings)
    return flux.release_ref(name)


def release_status(settings: VClusterSettings, obj: dict[str, Any] | None) -> ControllerStatus:
    if settings.controller == "argocd":
        return argocd.application_status(obj)
    return flux.release_status(obj)


def teardown_refs(name: str, settings: VClusterSettings) -> list[ObjectRef]:
    """Controller objects of preview `name` in deletion order, the release before its source. Both flavours:
    a preview made before the platform switched controllers is still found and removed."""
    flavours = [argocd.application_ref(name, settings)], [flux.release_ref(name), flux.repository_ref(name)]
    first, second = flavours if settings.controller == "argocd" else flavours[::-1]
    return [*first, *second]
