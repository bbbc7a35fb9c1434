"""What a person reading the evidence needs to see of a preview: rollout status, events and pod logs,
cut to a readable size.

`log_tail` of PreviewEvidence is one text. Each section gets a share of the size; rollout lines are
kept from the start (there are few), events and logs from the end (the latest tell why it broke).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_MIN_SHARE = 200
_NOTE_BYTES = 40  # room for the '[N earlier bytes omitted]' line


class PodLog(BaseModel):
    pod: str
    container: str
    text: str


def rollout_line(obj: dict[str, Any] | None, kind: str, namespace: str, name: str) -> str:
    """One line per Deployment or StatefulSet: how many replicas are ready, updated and available."""
    if obj is None:
        return f"{kind.lower()} {namespace}/{name}: not found in the virtual cluster"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    available = conditions.get("Available", {})
    progressing = conditions.get("Progressing", {})
    line = f"{kind.lower()} {namespace}/{name}: {ready}/{wanted} ready, {updated} updated"
    if available:
        line += f", Available={available.get('status')}"
    if progressing.get("status") == "False" or progressing.get("reason") == "ProgressDeadlineExceeded":
        line += f" ({progressing.get('reason')}: {progressing.get('message', '')})"
    return line


def event_line(event: dict[str, Any], where: str) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    count = event.get("count") or 1
    times = f" (x{count})" if count > 1 else ""
    subject = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    message = " ".join(str(event.get("message") or event.get("note") or "").split())
    return f"{when} [{where}] {event.get('type', 'Normal')} {event.get('reason', '')} {subject}: {message}{times}"


def sort_events(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Events of both clusters, oldest first; `where` names the cluster."""
    def when(pair: tuple[str, dict[str, Any]]) -> str:
        event = pair[1]
        return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")

    return [event_line(event, where) for where, event in sorted(events, key=when)]


def format_evidence(rollouts: list[str], events: list[str], logs: list[PodLog], cap: int) -> str:
    """The three sections in at most `cap` bytes (UTF-8); each keeps some room, each pod log keeps its header."""
    rollout = "\n".join(rollouts) or "(no Deployments or StatefulSets in the manifests)"
    happened = "\n".join(events) or "(no events)"
    headers = ["== rollout ==\n", "== events ==\n", "== logs ==\n"]
    log_headers = [f"--- {log.pod}/{log.container}\n" for log in logs]
    fixed = sum(len(h.encode()) for h in headers + log_headers) + len(headers) + len(logs)
    room = max(cap - fixed, len(headers) * _MIN_SHARE)
    log_size = sum(len(log.text.encode()) for log in logs) if logs else len(b"(no pod logs)")
    rollout_share, events_share, logs_share = _shares([len(rollout.encode()), len(happened.encode()), log_size], room)
    if logs:
        each = _shares([len(log.text.encode()) for log in logs], logs_share)
        body = "\n".join(head + _cut(log.text.rstrip(), share, keep_end=True)
                         for head, log, share in zip(log_headers, logs, each, strict=True))
    else:
        body = "(no pod logs)"
    return "\n".join([
        headers[0] + _cut(rollout, rollout_share, keep_end=False),
        headers[1] + _cut(happened, events_share, keep_end=True),
        headers[2] + body,
    ])


def _shares(sizes: list[int], room: int) -> list[int]:
    """Give small parts what they need and split the rest evenly among the large ones."""
    shares = [0] * len(sizes)
    left, pending = room, sorted(range(len(sizes)), key=lambda i: sizes[i])
    while pending:
        fair = left // len(pending)
        index = pending.pop(0)
        shares[index] = min(sizes[index], fair)
        left -= shares[index]
    return shares


def _cut(text: str, limit: int, keep_end: bool) -> str:
    """`text` within `limit` bytes, cut at a line break, saying how much was left out."""
    data = text.encode()
    if len(data) <= limit:
        return text
    keep = max(limit - _NOTE_BYTES, 0)
    if keep_end:
        kept = data[len(data) - keep:]
        kept = kept[kept.find(b"\n") + 1:] if b"\n" in kept else kept
        return f"[{len(data) - len(kept)} earlier bytes omitted]\n{kept.decode('utf-8', errors='ignore')}"
    kept = data[:keep]
    kept = kept[: kept.rfind(b"\n")] if b"\n" in kept else kept
    return f"{kept.decode('utf-8', errors='ignore')}\n[{len(data) - len(kept)} more bytes omitted]"
