"""Which PreviewBackend a worker runs, chosen by SPEC2SHIP_PREVIEW_BACKEND (local or vcluster)."""

from __future__ import annotations

from pathlib import Path

from activities.config import VClusterSettings, preview_backend
from activities.preview.base import PreviewBackend
from activities.preview.local import LocalPreviewBackend


def make_preview_backend(data_dir: Path, owner: str) -> PreviewBackend:
    """The configured backend. `owner` (the worker's stable id) labels Kubernetes previews so that this
    worker's restart can reap what it left; the local backend keeps its state under `data_dir`."""
    if preview_backend() == "vcluster":
        from activities.preview.vcluster.backend import VClusterPreviewBackend  # the kubernetes client is heavy

        return VClusterPreviewBackend(VClusterSettings.from_env(), owner=owner)
    return LocalPreviewBackend(data_dir)
