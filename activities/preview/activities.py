"""The preview janitor's activity: whatever backend this worker runs, remove previews past their TTL."""

from __future__ import annotations

from temporalio import activity

from activities.preview.base import PreviewBackend
from contracts.activities import PreviewCalls


class PreviewActivities(PreviewCalls):
    def __init__(self, backend: PreviewBackend) -> None:
        self.backend = backend

    @activity.defn
    def reap_previews(self) -> list[str]:
        """Expired previews only: a run's own preview is torn down by its run, a crashed worker's by its restart."""
        return self.backend.reap()
