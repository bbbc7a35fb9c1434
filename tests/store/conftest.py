"""Both store backends behind one fixture: every contract test runs against the folder and against S3 (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from doubles.s3_server import S3Server, s3_server

from activities.config import StoreSettings
from activities.store import BlobStore, open_store
from activities.store.cache import CachingStore
from activities.store.sealed import SealedStore
from contracts.store import BlobRef


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@dataclass
class Backend:
    """A store under test, plus a way around it to its raw bytes (to damage one, as a faulty disk would)."""

    store: BlobStore
    overwrite: Callable[[BlobRef, bytes], None]
    env: dict[str, str]


def _folder(tmp_path: Path) -> Backend:
    from activities.store.folder import scope_folder_name

    root = tmp_path / "store"

    def overwrite(ref: BlobRef, data: bytes) -> None:
        (root / scope_folder_name(ref.scope) / ref.sha256).write_bytes(data)

    env = {"SPEC2SHIP_STORE": "folder", "SPEC2SHIP_STORE_DIR": str(root)}
    return Backend(_backend_of(open_store(settings=StoreSettings(backend="folder", folder=str(root)))), overwrite, env)


def _s3(server: S3Server) -> Backend:
    from urllib.parse import quote

    bucket, prefix = server.new_bucket(), f"run-{uuid.uuid4().hex[:6]}/"

    def overwrite(ref: BlobRef, data: bytes) -> None:
        server.client().put_object(Bucket=bucket, Key=f"{prefix}{quote(ref.scope, safe='')}/{ref.sha256}", Body=data)

    env = server.env(bucket, prefix)
    settings = StoreSettings(backend="s3", bucket=bucket, prefix=prefix, endpoint_url=server.endpoint,
                             region="us-east-1", path_style=True, access_key_id=env["SPEC2SHIP_STORE_ACCESS_KEY_ID"],
                             secret_access_key=env["SPEC2SHIP_STORE_SECRET_ACCESS_KEY"])
    return Backend(_backend_of(open_store(settings=settings)), overwrite, env)


def _backend_of(opened: BlobStore) -> BlobStore:
    """The backend itself under the cache and the sealing layer: the contract is the backend's own (the layers
    are tested apart), and a test may look at the bytes exactly as stored."""
    assert isinstance(opened, CachingStore) and isinstance(opened.inner, SealedStore)
    return opened.inner.inner


@pytest.fixture(params=["folder", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "folder":
        return _folder(tmp_path)
    return _s3(request.getfixturevalue("moto"))
