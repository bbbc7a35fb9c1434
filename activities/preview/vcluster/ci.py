"""Is the PR's image built yet? Decided from the check runs reported for the head commit.

Pure, so the workflow's durable wait (the lead's: poll or wait for the `ci_completed` signal) can call it
from an activity or a test alike. Only a successful run of the named check means the image exists:
`neutral` and `skipped` pass as CI results elsewhere, but here they mean nothing was pushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

_FAILED = {"failure", "cancelled", "timed_out", "action_required", "stale", "startup_failure", "neutral", "skipped"}


class CheckRun(BaseModel):
    """One check run as a forge reports it (GitHub's check-run fields)."""

    name: str
    head_sha: str
    status: str = Field(description="queued, in_progress, completed, waiting, requested or pending")
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    details_url: str | None = None


class ImageBuild(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    missing = "missing"


class ImageCheck(BaseModel):
    state: ImageBuild
    reason: str
    details_url: str | None = None


def image_check(runs: Sequence[CheckRun], *, check_name: str, head_sha: str) -> ImageCheck:
    """The state of check `check_name` on `head_sha`; the latest run counts when the check was re-run."""
    mine = [run for run in runs if run.name == check_name and run.head_sha == head_sha]
    if not mine:
        seen = sorted({run.name for run in runs if run.head_sha == head_sha})
        others = f"; checks seen on it: {', '.join(seen)}" if seen else "; no checks were reported on it"
        return ImageCheck(
            state=ImageBuild.missing,
            reason=f"no check named {check_name!r} on {head_sha[:12]}{others}. Is preview.ci_check the check's name?",
        )
    latest = _latest(mine)
    where = f"check {check_name!r} on {head_sha[:12]}"
    if latest.status != "completed":
        return ImageCheck(
            state=ImageBuild.pending, reason=f"{where} is {latest.status}", details_url=latest.details_url
        )
    if latest.conclusion == "success":
        return ImageCheck(state=ImageBuild.succeeded, reason=f"{where} succeeded", details_url=latest.details_url)
    conclusion = latest.conclusion or "without a conclusion"
    why = " (so no image was pushed)" if latest.conclusion in _FAILED else ""
    return ImageCheck(
        state=ImageBuild.failed, reason=f"{where} concluded {conclusion}{why}", details_url=latest.details_url
    )


def _latest(runs: list[CheckRun]) -> CheckRun:
    """The run started last; among runs without a start time, the one reported last."""
    def started(pair: tuple[int, CheckRun]) -> tuple[float, int]:
        index, run = pair
        return (run.started_at.timestamp() if run.started_at else float("-inf"), index)

    return max(enumerate(runs), key=started)[1]
