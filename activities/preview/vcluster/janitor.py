"""Finding previews that outlived their time, by label, for the janitor Schedule and a worker's restart.

A preview is found through its namespace and through its controller object (an Argo CD Application lives
outside the namespace and may outlast it). Its expiry is the `spec2ship.dev/expires` label; one without a
readable label counts from its creation time plus the TTL, so a hand-made or damaged one is not kept
forever.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from activities.config import VClusterSettings
from activities.preview.vcluster import argocd, flux
from activities.preview.vcluster.kube import KubeApi, KubeError
from activities.preview.vcluster.naming import LABEL_PREVIEW, all_previews_selector, expires_of
from activities.preview.vcluster.teardown import Progress, TeardownReport, teardown_preview

_KINDS_TO_SEARCH = [("v1", "Namespace"), (argocd.API_VERSION, argocd.KIND), (flux.RELEASE_API_VERSION, "HelmRelease")]


class FoundPreview(BaseModel):
    name: str
    expires_at: datetime | None
    created_at: datetime | None
    found_as: list[str]

    def expired(self, now: datetime, ttl_s: float) -> bool:
        if self.expires_at is not None:
            return self.expires_at <= now
        if self.created_at is not None:
            return self.created_at + timedelta(seconds=ttl_s) <= now
        return True  # neither label nor creation time: nothing says it is still wanted


def find_previews(host: KubeApi, settings: VClusterSettings, selector: str | None = None) -> list[FoundPreview]:
    """Every preview the selector (default: all of spec2ship's) matches, one entry per preview name."""
    found: dict[str, FoundPreview] = {}
    for api_version, kind in _KINDS_TO_SEARCH:
        namespace = settings.argocd_namespace if kind == argocd.KIND else None
        try:
            objects = host.list_objects(api_version, kind, namespace=namespace, selector=selector or
                                        all_previews_selector())
        except KubeError as error:
            if error.status == 404:
                continue  # that controller is not installed here
            raise
        for obj in objects:
            _note(found, obj, kind)
    return sorted(found.values(), key=lambda preview: preview.name)


def _note(found: dict[str, FoundPreview], obj: dict[str, Any], kind: str) -> None:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = labels.get(LABEL_PREVIEW) or meta.get("name")
    if not name:
        return
    created = _parse_time(meta.get("creationTimestamp"))
    entry = found.setdefault(name, FoundPreview(name=name, expires_at=expires_of(labels), created_at=created,
                                                found_as=[]))
    entry.found_as.append(f"{kind} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta['name']}")
    if entry.expires_at is None:
        entry.expires_at = expires_of(labels)


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def expired_previews(
    host: KubeApi, settings: VClusterSettings, *, now: datetime | None = None, selector: str | None = None
) -> list[FoundPreview]:
    moment = now or datetime.now(UTC)
    return [preview for preview in find_previews(host, settings, selector) if preview.expired(moment, settings.ttl_s)]


def reap_expired(
    host: KubeApi,
    settings: VClusterSettings,
    *,
    now: datetime | None = None,
    selector: str | None = None,
    progress: Progress = lambda _: None,
) -> list[TeardownReport]:
    """Tear down every expired preview; one report each, incomplete ones included (never raised away)."""
    return [
        teardown_preview(host, preview.name, settings, progress=progress)
        for preview in expired_previews(host, settings, now=now, selector=selector)
    ]
