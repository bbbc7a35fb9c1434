"""Everything one preview creates, computed without a cluster: the backend applies exactly this, and
`spec2ship preview render` prints it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from activities.config import VClusterSettings
from activities.preview.vcluster.gitops import controller_objects
from activities.preview.vcluster.manifests import (
    ServiceTarget,
    files_on_disk,
    image_repository_of,
    load_manifests,
    service_target,
)
from activities.preview.vcluster.naming import PreviewIdentity
from activities.preview.vcluster.objects import namespace_object
from activities.preview.vcluster.values import vcluster_values
from specs.models import PreviewConfig, Spec, image_for


class PreviewPlan(BaseModel):
    """The objects of one preview: on the host (namespace, controller objects) and in the virtual cluster."""

    identity: PreviewIdentity
    controller: Literal["argocd", "flux"]
    host_objects: list[dict[str, Any]]
    virtual_objects: list[dict[str, Any]]
    image: str | None = None
    target: ServiceTarget | None = None
    notes: list[str] = []

    def to_yaml(self) -> str:
        """YAML documents, host objects first; a comment before each says where it goes."""
        parts = [
            "# host cluster\n" + yaml.safe_dump(obj, sort_keys=False) for obj in self.host_objects
        ] + [
            f"# virtual cluster {self.identity.release}\n" + yaml.safe_dump(obj, sort_keys=False)
            for obj in self.virtual_objects
        ]
        return "---\n".join(parts)


def plan_preview(
    *,
    config: PreviewConfig | None,
    service: str,
    pr: int,
    sha: str,
    manifest_files: dict[str, str] | None,
    settings: VClusterSettings,
    needs_service: bool,
    owner: str = "",
    preview_id: str = "",
    now: datetime | None = None,
) -> PreviewPlan:
    """Pure: the same inputs give the same objects. `manifest_files` is the manifests folder's
    `{path: text}` (None when the spec has no manifests). Raises ManifestError for unusable manifests."""
    identity = PreviewIdentity.create(
        service=service,
        pr=pr,
        sha=sha,
        ttl_s=settings.ttl_s,
        prefix=settings.namespace_prefix,
        owner=owner,
        preview_id=preview_id,
        now=now,
    )
    values = vcluster_values(identity, settings)
    host = [namespace_object(identity), *controller_objects(identity, settings, values)]
    notes: list[str] = []
    image = image_for(config.image, sha) if config is not None and config.image else None
    virtual: list[dict[str, Any]] = []
    target: ServiceTarget | None = None
    if config is None or config.manifests is None or manifest_files is None:
        notes.append(
            "preview.manifests is not set: the virtual cluster would be created, but nothing deployed into it"
        )
    else:
        repository = image_repository_of(image) if image else None
        loaded = load_manifests(manifest_files, labels=identity.labels(), image_repository=repository, image=image)
        virtual = loaded.objects
        if not virtual:
            notes.append(f"preview.manifests {config.manifests!r} holds no Kubernetes objects: nothing deployed")
        if image is None:
            notes.append("preview.image is not set: the manifests are applied as written")
        elif loaded.images_replaced == 0:
            notes.append(f"no container in preview.manifests uses {repository}: the PR's image {image} would not run")
        wanted = config.service or service
        target = service_target(virtual, wanted)
        if target is None and needs_service:
            notes.append(f"no Service named {wanted!r} in preview.manifests: http criteria would have nothing to probe")
    return PreviewPlan(
        identity=identity,
        controller=settings.controller,
        host_objects=host,
        virtual_objects=virtual,
        image=image,
        target=target,
        notes=notes,
    )


def render_preview(
    spec: Spec,
    repo: Path,
    *,
    controller: Literal["argocd", "flux"],
    pr: int,
    sha: str,
    settings: VClusterSettings | None = None,
    now: datetime | None = None,
) -> PreviewPlan:
    """The dry run: the spec's preview as the backend would create it, manifests read from the working tree."""
    base = settings or VClusterSettings()
    chosen = base.model_copy(update={"controller": controller})
    config = spec.preview
    files = files_on_disk(repo, config.manifests) if config is not None and config.manifests else None
    return plan_preview(
        config=config,
        service=spec.service,
        pr=pr,
        sha=sha,
        manifest_files=files,
        settings=chosen,
        needs_service=any(criterion.kind == "http" for criterion in spec.acceptance),
        now=now,
    )
