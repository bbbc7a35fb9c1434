"""The PreviewBackend protocol: bring up the PR head somewhere, probe it, always take it down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from contracts.evidence import PreviewEvidence
from contracts.preview import PreviewRequest

# Called with a progress line while the backend waits; the activity passes `activity.heartbeat`, which is
# also how Temporal delivers cancellation to it.
Heartbeat = Callable[[str], object]


class PreviewError(RuntimeError):
    """The preview could not be set up for reasons outside the change (bad request, git, disk, sandbox)."""


class PreviewBackend(Protocol):
    """One backend per kind of environment. `run` must tear down in every case, including
    cancellation; `reap` removes what a crashed predecessor left behind."""

    name: str

    async def run(self, request: PreviewRequest, heartbeat: Heartbeat) -> PreviewEvidence: ...

    def reap(self, force: bool = False) -> list[str]:
        """Clean up leftovers: expired previews; with `force` (a worker starting) also every preview this
        worker made before it stopped. Returns what it removed, or what it could not, for the log."""
        ...
