"""The gateway's answer to one tool call."""

from __future__ import annotations

from pydantic import BaseModel


class GateVerdict(BaseModel):
    allowed: bool
    reason: str = ""
    path: str | None = None
