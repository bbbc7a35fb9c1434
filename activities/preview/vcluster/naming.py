"""Names and labels of a preview's objects, derived from service, PR and head commit.

Names are what Kubernetes accepts everywhere they are used: a namespace is a DNS label (63 characters),
a Helm release name at most 53, and vCluster appends to both. Labels are how previews are found again:
by the janitor (expiry), by a retry (same PR) and by a worker restarting after a crash (owner).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field, field_validator

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "spec2ship"
PART_OF = "app.kubernetes.io/part-of"
LABEL_PREVIEW = "spec2ship.dev/preview"
LABEL_SERVICE = "spec2ship.dev/service"
LABEL_PR = "spec2ship.dev/pr"
LABEL_SHA = "spec2ship.dev/head-sha"
LABEL_EXPIRES = "spec2ship.dev/expires"  # unix seconds: label values cannot hold ':' or '+'
LABEL_OWNER = "spec2ship.dev/owner"
ANNOTATION_EXPIRES_AT = "spec2ship.dev/expires-at"  # the same moment in ISO 8601, for people
ANNOTATION_PREVIEW_ID = "spec2ship.dev/preview-id"

_NAME_MAX = 40  # leaves room for vCluster's suffixes on synced objects and Helm's 53-character release names
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def label_value(text: str) -> str:
    """`text` as a valid label value: kept when valid, otherwise cleaned and suffixed with a short hash."""
    if _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:50].strip("-_.")
    return f"{cleaned}-{hashlib.sha256(text.encode()).hexdigest()[:8]}".lstrip("-")


def dns_label(text: str, limit: int) -> str:
    """A lowercase DNS label of at most `limit` characters; a shortened name keeps a hash of the full one."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{cleaned[: limit - 7].rstrip('-')}-{digest}"


class PreviewIdentity(BaseModel):
    """Who a preview belongs to; every name and label of its objects comes from here."""

    service: str = Field(min_length=1)
    pr: int = Field(gt=0)
    sha: str
    prefix: str = "s2s"
    owner: str = Field(default="", description="The worker that created it, so its restart can reap it.")
    preview_id: str = ""
    expires_at: datetime

    @field_validator("sha")
    @classmethod
    def _full_hex(cls, value: str) -> str:
        if not _SHA.match(value):
            raise ValueError(f"head sha {value!r} is not a lowercase hexadecimal commit id")
        return value

    @classmethod
    def create(
        cls,
        *,
        service: str,
        pr: int,
        sha: str,
        ttl_s: float,
        prefix: str = "s2s",
        owner: str = "",
        preview_id: str = "",
        now: datetime | None = None,
    ) -> PreviewIdentity:
        start = now or datetime.now(UTC)
        return cls(
            service=service,
            pr=pr,
            sha=sha,
            prefix=prefix,
            owner=owner,
            preview_id=preview_id,
            expires_at=(start + timedelta(seconds=ttl_s)).replace(microsecond=0),
        )

    @property
    def name(self) -> str:
        """Namespace, release and controller object name: one per PR head, so a new round never collides
        with the old one still terminating."""
        return dns_label(f"{self.prefix}-{self.service}-pr{self.pr}-{self.sha[:7]}", _NAME_MAX)

    @property
    def namespace(self) -> str:
        return self.name

    @property
    def release(self) -> str:
        """The vCluster's Helm release name; its kubeconfig lands in the secret `vc-<release>`."""
        return self.name

    @property
    def kubeconfig_secret(self) -> str:
        return f"vc-{self.release}"

    @property
    def api_host(self) -> str:
        """The in-cluster DNS name of the virtual cluster's API Service (the chart names it after the release)."""
        return f"{self.release}.{self.namespace}.svc"

    def labels(self) -> dict[str, str]:
        labels = {
            MANAGED_BY: MANAGER,
            PART_OF: "spec2ship-preview",
            LABEL_PREVIEW: self.name,
            LABEL_SERVICE: label_value(self.service),
            LABEL_PR: str(self.pr),
            LABEL_SHA: self.sha,
            LABEL_EXPIRES: str(int(self.expires_at.timestamp())),
        }
        if self.owner:
            labels[LABEL_OWNER] = label_value(self.owner)
        return labels

    def annotations(self) -> dict[str, str]:
        notes = {ANNOTATION_EXPIRES_AT: self.expires_at.isoformat()}
        if self.preview_id:
            notes[ANNOTATION_PREVIEW_ID] = self.preview_id
        return notes


def all_previews_selector() -> str:
    return f"{MANAGED_BY}={MANAGER},{LABEL_PREVIEW}"


def pr_selector(service: str, pr: int) -> str:
    """Every preview of one PR, whatever its head: a new run clears what an earlier one left."""
    return f"{MANAGED_BY}={MANAGER},{LABEL_SERVICE}={label_value(service)},{LABEL_PR}={pr}"


def owner_selector(owner: str) -> str:
    return f"{MANAGED_BY}={MANAGER},{LABEL_OWNER}={label_value(owner)}"


def expires_of(labels: dict[str, str] | None) -> datetime | None:
    """The expiry a preview's labels carry, or None when missing or unreadable (the janitor then asks the age)."""
    raw = (labels or {}).get(LABEL_EXPIRES, "")
    if not raw.isdigit():
        return None
    return datetime.fromtimestamp(int(raw), UTC)
