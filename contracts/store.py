"""References into the blob store: what workflow history carries instead of large content.

An agent's conversation and its large tool results live in a content-addressed store that every worker
reaches (a folder for the embedded default, S3-compatible object storage in clusters). History holds
these references, so the bytes a step adds to history do not grow with the length of the run.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class BlobRef(BaseModel):
    """One stored blob: named by the sha256 of its bytes, inside the scope it was written for.

    The scope is the retention unit: the workflow id of the agent run that wrote it. A reader verifies
    the bytes against `sha256`, so a reference can never silently point at other content.
    """

    scope: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class ConversationRef(BaseModel):
    """An agent run's conversation in the store: a manifest listing its tool specs and its messages.

    `manifest` is None before the first model call (nothing is stored yet); every `call_model` answers
    with the reference of the conversation including its own turn.
    """

    scope: str = Field(min_length=1)
    manifest: BlobRef | None = None
    messages: int = Field(default=0, ge=0, description="How many messages the manifest lists.")


class SweepStoreInput(BaseModel):
    """One pass of the store's janitor; the retention period is the worker's own setting unless given."""

    retention_s: float | None = Field(default=None, ge=0)


class SweepReport(BaseModel):
    """What one janitor pass found and removed, scope by scope (readable in the Temporal UI)."""

    checked: int = 0
    removed: list[str] = Field(default_factory=list)
    removed_blobs: int = 0
    kept_running: int = 0
    kept_recent: int = 0
    problems: list[str] = Field(default_factory=list)
    swept_at: datetime | None = None
