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
    opened = open_store(settings=StoreSettings(backend="folder", folder=str(root)))
    assert isinstance(opened, CachingStore), "workers read the folder through the in-process cache"
    return Backend(opened.inner, overwrite, env)  # the contract is the backend's own; the cache is tested apart


def _s3(server: S3Server) -> Backend:
    from urllib.parse import quote

    bucket, prefix = server.new_bucket(), f"run-{uuid.uuid4().hex[:6]}/"

    def overwrite(ref: BlobRef, data: bytes) -> None:
        server.client().put_object(Bucket=bucket, Key=f"{prefix}{quote(ref.scope, safe='')}/{ref.sha256}", Body=data)

    env = server.env(bucket, prefix)
    settings = StoreSettings(backend="s3", bucket=bucket, prefix=prefix, endpoint_url=server.endpoint,
                             region="us-east-1", path_style=True, access_key_id=env["SPEC2SHIP_STORE_ACCESS_KEY_ID"],
                             secret_access_key=env["SPEC2SHIP_STORE_SECRET_ACCESS_KEY"])
    opened = open_store(settings=settings)
    assert isinstance(opened, CachingStore), "workers read S3 through the in-process cache"
    return Backend(opened.inner, overwrite, env)  # the contract is the backend's own; the cache is tested apart


@pytest.fixture(params=["folder", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "folder":
        return _folder(tmp_path)
    return _s3(request.getfixturevalue("moto"))
