"""The blob store's contract: a small Protocol every backend implements, and the errors it raises.

Blobs are content-addressed (named by the sha256 of their bytes), so a put is idempotent: a retried
activity writes the same name again, and two workers writing the same content agree. Every read is
verified against the name. Blobs are grouped in scopes (an agent run's workflow id), the unit the
janitor removes once the run is finished and its retention period is over.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from contracts.store import BlobRef


class StoreError(Exception):
    """Something about the store went wrong; the message says what, where, and what to do."""


class StoreUnavailable(StoreError):
    """The store did not answer (network, timeout, a 5xx): worth retrying."""


class StoreMisconfigured(StoreError):
    """The store answered no, or the settings cannot work (bucket missing, credentials refused): not worth retrying."""


class BlobMissing(StoreError):
    """A referenced blob is not in the store (removed by the janitor, or written to another store)."""


class BlobCorrupt(StoreError):
    """A blob's bytes do not hash to its name: the store's copy was altered."""


class ScopeUsage(BaseModel):
    """One scope as the janitor sees it: how much it holds and when it was last written."""

    scope: str
    blobs: int
    bytes: int
    newest: datetime | None


class BlobStore(Protocol):
    """Content-addressed blobs in scopes. Implementations are synchronous (boto3 is); async callers use a thread."""

    @property
    def description(self) -> str:
        """Where the blobs live, for messages: `folder /data/store`, `s3://bucket/prefix at URL`."""
        ...

    def check(self) -> None:
        """Raise StoreUnavailable or StoreMisconfigured when the store cannot be used; a worker calls it at start."""
        ...

    def put(self, scope: str, data: bytes) -> BlobRef:
        """Store `data` in `scope` (a no-op when it is there already) and return its reference."""
        ...

    def get(self, ref: BlobRef) -> bytes:
        """The blob's bytes, verified against its name; BlobMissing when it is not there."""
        ...

    def scopes(self) -> list[ScopeUsage]:
        """Every scope that holds blobs."""
        ...

    def delete_scope(self, scope: str) -> int:
        """Remove every blob of `scope`; the number removed (0 when there was none)."""
        ...


class StoreLayer:
    """A store in front of another (a cache, encryption): passes through whatever it does not change."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner

    @property
    def description(self) -> str:
        return self.inner.description

    def check(self) -> None:
        self.inner.check()

    def put(self, scope: str, data: bytes) -> BlobRef:
        return self.inner.put(scope, data)

    def get(self, ref: BlobRef) -> bytes:
        return self.inner.get(ref)

    def scopes(self) -> list[ScopeUsage]:
        return self.inner.scopes()

    def delete_scope(self, scope: str) -> int:
        return self.inner.delete_scope(scope)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reference(scope: str, data: bytes) -> BlobRef:
    return BlobRef(scope=scope, sha256=digest(data), size=len(data))


def verified(ref: BlobRef, data: bytes, where: str) -> bytes:
    """`data` when it is the blob `ref` names; BlobCorrupt otherwise."""
    found = digest(data)
    if found != ref.sha256 or len(data) != ref.size:
        raise BlobCorrupt(f"blob {ref.sha256[:12]} of {ref.scope!r} in {where} is corrupt: its bytes hash to "
                          f"{found[:12]} ({len(data)} bytes, expected {ref.size}); the store's copy was altered")
    return data
