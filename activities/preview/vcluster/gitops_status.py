"""What a GitOps controller says about the release it installs, in one shape for both flavours."""

from __future__ import annotations

from pydantic import BaseModel


class ControllerStatus(BaseModel):
    ready: bool
    reason: str
    failed: bool = False  # the controller gave up or reports the release broken; waiting longer rarely helps
