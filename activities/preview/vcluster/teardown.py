"""Taking a preview down: the controller's objects first (so Argo CD or Flux uninstall the chart), then
the namespace, each waited for until it is gone.

Nothing here gives up silently: whatever could not be deleted, or is still there when time runs out,
is listed in the report with the reason, so the run's evidence says what was left and the janitor (or a
person) can finish the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from activities.config import VClusterSettings
from activities.preview.vcluster.gitops import teardown_refs
from activities.preview.vcluster.kube import KubeApi, KubeError
from activities.preview.vcluster.objects import ObjectRef

Progress = Callable[[str], object]


class TeardownReport(BaseModel):
    preview: str
    deleted: list[str] = []
    left: list[str] = []

    @property
    def complete(self) -> bool:
        return not self.left

    def summary(self) -> str:
        if self.complete:
            return f"preview {self.preview} torn down ({', '.join(self.deleted) or 'nothing was left'})"
        return f"preview {self.preview} NOT fully torn down; left: {'; '.join(self.left)}"


def teardown_preview(
    host: KubeApi,
    name: str,
    settings: VClusterSettings,
    *,
    progress: Progress = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TeardownReport:
    """Delete preview `name` (its namespace has the same name). Blocking; safe to repeat."""
    report = TeardownReport(preview=name)
    deadline = clock() + settings.teardown_timeout_s
    pending: list[ObjectRef] = []
    for ref in teardown_refs(name, settings):
        progress(f"preview {name}: deleting {ref}")
        if _delete(host, ref, report):
            pending.append(ref)
    # The controller uninstalls while its object waits on the finalizer; give it half the time.
    pending = _wait_gone(host, pending, clock() + settings.teardown_timeout_s / 2, settings, sleep, clock, progress)
    report.left += [f"{ref}: still present (the controller has not finished uninstalling)" for ref in pending]
    namespace = ObjectRef(api_version="v1", kind="Namespace", name=name)
    progress(f"preview {name}: deleting {namespace}")
    if _delete(host, namespace, report):
        remaining = _wait_gone(host, [namespace], deadline, settings, sleep, clock, progress)
        report.left += [f"{ref}: still terminating after {settings.teardown_timeout_s:g}s" for ref in remaining]
    return report


def _delete(host: KubeApi, ref: ObjectRef, report: TeardownReport) -> bool:
    """Ask for deletion; True when there is something to wait for."""
    try:
        if host.delete(ref):
            report.deleted.append(str(ref))
            return True
        return False
    except KubeError as error:
        if error.status == 404:  # the cluster does not serve this kind at all: nothing of it to delete
            return False
        report.left.append(f"{ref}: delete refused: {error.status} {error.message}")
        return False


def _wait_gone(
    host: KubeApi,
    refs: list[ObjectRef],
    deadline: float,
    settings: VClusterSettings,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    progress: Progress,
) -> list[ObjectRef]:
    """Poll until every object is gone or the deadline passes; returns what is still there."""
    remaining = list(refs)
    while remaining:
        still: list[ObjectRef] = []
        for ref in remaining:
            try:
                if host.get(ref) is not None:
                    still.append(ref)
            except KubeError:
                still.append(ref)  # cannot tell: count it as present, and keep asking
        remaining = still
        if not remaining or clock() >= deadline:
            break
        progress(f"waiting for {', '.join(str(ref) for ref in remaining)} to go")
        sleep(settings.poll_s)
    return remaining
