"""The content-addressed blob store: agent conversations and large tool results, out of workflow history.

`open_store` picks the backend the configuration names (SPEC2SHIP_STORE: `folder`, the default, under the
data folder; or `s3`, any S3-compatible object storage); `conversation` reads and extends an agent's
stored conversation; `janitor` removes the blobs of finished runs after the retention period.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.config import StoreSettings
from activities.store.base import (
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    ScopeUsage,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
)
from activities.store.cache import CachingStore
from activities.store.sealed import NoKeys, SealedStore, Sealer

__all__ = [
    "BlobCorrupt",
    "BlobMissing",
    "BlobStore",
    "ScopeUsage",
    "Sealer",
    "StoreError",
    "StoreMisconfigured",
    "StoreUnavailable",
    "open_store",
    "store_failure",
]


def open_store(data_dir: Path | None = None, settings: StoreSettings | None = None,
               sealer: Sealer | None = None) -> BlobStore:
    """The store these settings (default: the environment's) name; the folder backend defaults under `data_dir`.

    With a `sealer` (the payload codec's, when it is on) every blob is encrypted before it is stored; without
    one, a sealed blob is refused with a message rather than misread. Reads go through an in-process cache."""
    try:
        chosen = settings or StoreSettings.from_env()
    except ValueError as error:
        raise StoreMisconfigured(str(error)) from None
    backend: BlobStore
    if chosen.backend == "s3":
        from activities.store.s3 import S3Store

        backend = S3Store(chosen.bucket, chosen.prefix, endpoint_url=chosen.endpoint_url, region=chosen.region,
                          path_style=chosen.path_style, access_key_id=chosen.access_key_id,
                          secret_access_key=chosen.secret_access_key, session_token=chosen.session_token)
    else:
        from activities.store.folder import FolderStore

        backend = FolderStore(chosen.folder_path(data_dir))
    return CachingStore(SealedStore(backend, sealer or NoKeys()))


def store_failure(error: StoreError) -> ApplicationError:
    """Map a store error onto Temporal's retries: an unreachable store may come back, the rest will not."""
    if isinstance(error, StoreUnavailable):
        return ApplicationError(str(error), type="StoreUnavailable")
    kind = "config" if isinstance(error, StoreMisconfigured) else type(error).__name__
    return ApplicationError(str(error), type=kind, non_retryable=True)
