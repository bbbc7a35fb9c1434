"""The blob store's contract, held by the folder backend and the S3 backend (moto's real S3 API) alike."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from doubles.s3_server import S3Server
from store.conftest import Backend

from activities.config import StoreSettings
from activities.store import (
    BlobCorrupt,
    BlobMissing,
    StoreMisconfigured,
    StoreUnavailable,
    open_store,
)
from activities.store.base import StoreLayer
from activities.store.cache import CachingStore
from activities.store.folder import FolderStore
from contracts.store import BlobRef

SCOPE = "spec2ship/greeter/greet-by-name-abc123/coder/0-4"


def test_a_put_is_named_by_its_content_and_reads_back(backend: Backend) -> None:
    backend.store.check()
    data = b"twelve kilobytes of tool output\n" * 400
    ref = backend.store.put(SCOPE, data)
    assert ref == BlobRef(scope=SCOPE, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert backend.store.get(ref) == data


def test_puts_are_idempotent_and_scopes_are_counted(backend: Backend) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)  # S3 keeps whole seconds; clocks may differ a little
    first = backend.store.put(SCOPE, b"one")
    again = backend.store.put(SCOPE, b"one")
    backend.store.put(SCOPE, b"two!")
    backend.store.put("another/run", b"one")
    assert first == again
    usage = {found.scope: found for found in backend.store.scopes()}
    assert set(usage) == {SCOPE, "another/run"}
    assert (usage[SCOPE].blobs, usage[SCOPE].bytes) == (2, 7)
    assert usage[SCOPE].newest is not None and usage[SCOPE].newest >= before


def test_a_scope_is_removed_whole_and_alone(backend: Backend) -> None:
    kept = backend.store.put("keep/me", b"stays")
    for n in range(3):
        backend.store.put(SCOPE, f"blob {n}".encode())
    assert backend.store.delete_scope(SCOPE) == 3
    assert backend.store.delete_scope(SCOPE) == 0
    assert [found.scope for found in backend.store.scopes()] == ["keep/me"]
    assert backend.store.get(kept) == b"stays"


def test_a_missing_blob_is_named_as_missing(backend: Backend) -> None:
    ref = backend.store.put(SCOPE, b"soon gone")
    backend.store.delete_scope(SCOPE)
    with pytest.raises(BlobMissing, match="not in"):
        backend.store.get(ref)


def test_every_read_is_verified_against_the_name(backend: Backend) -> None:
    ref = backend.store.put(SCOPE, b"the original")
    backend.overwrite(ref, b"something else")
    with pytest.raises(BlobCorrupt, match="corrupt"):
        backend.store.get(ref)


def test_the_environment_chooses_the_backend(backend: Backend, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """Workers open the store from SPEC2SHIP_STORE*; what one writes, another worker so configured reads."""
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)
    ref = open_store(tmp_path / "another-data-dir").put(SCOPE, b"shared")
    assert backend.store.get(ref) == b"shared"


def test_a_missing_bucket_is_a_one_line_configuration_error(moto: S3Server) -> None:
    settings = StoreSettings(backend="s3", bucket="no-such-bucket", endpoint_url=moto.endpoint, region="us-east-1",
                             path_style=True, access_key_id="k", secret_access_key="s")
    with pytest.raises(StoreMisconfigured) as error:
        open_store(settings=settings).check()
    assert "bucket 'no-such-bucket' does not exist" in str(error.value) and "\n" not in str(error.value)


def test_an_unreachable_endpoint_is_said_to_be_unreachable() -> None:
    with socket_closed_port() as port:
        settings = StoreSettings(backend="s3", bucket="blobs", endpoint_url=f"http://127.0.0.1:{port}",
                                 region="us-east-1", path_style=True, access_key_id="k", secret_access_key="s")
        with pytest.raises(StoreUnavailable) as error:
            open_store(settings=settings).check()
    message = str(error.value)
    assert "unreachable" in message and "SPEC2SHIP_STORE_ENDPOINT" in message and "\n" not in message


def test_bad_settings_are_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEC2SHIP_STORE", "nfs")
    with pytest.raises(StoreMisconfigured, match="SPEC2SHIP_STORE='nfs' is not a store"):
        open_store(tmp_path)
    monkeypatch.setenv("SPEC2SHIP_STORE", "s3")
    with pytest.raises(StoreMisconfigured, match="set SPEC2SHIP_STORE_BUCKET"):
        open_store(tmp_path)
    monkeypatch.setenv("SPEC2SHIP_STORE", "folder")
    monkeypatch.setenv("SPEC2SHIP_STORE_RETENTION", "a week")
    with pytest.raises(StoreMisconfigured, match="SPEC2SHIP_STORE_RETENTION"):
        open_store(tmp_path)


def test_a_folder_that_cannot_be_written_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreMisconfigured, match="SPEC2SHIP_STORE_DIR"):
        open_store(settings=StoreSettings(folder=str(blocker / "store"))).check()


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEC2SHIP_STORE", "s3")
    monkeypatch.setenv("SPEC2SHIP_STORE_BUCKET", "blobs")
    monkeypatch.setenv("SPEC2SHIP_STORE_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("SPEC2SHIP_STORE_RETENTION", "3d")
    settings = StoreSettings.from_env()
    assert (settings.bucket, settings.prefix, settings.path_style, settings.retention_s) == (
        "blobs", "spec2ship/", True, 3 * 86400)
    monkeypatch.setenv("SPEC2SHIP_STORE_PATH_STYLE", "false")
    monkeypatch.setenv("SPEC2SHIP_STORE_RETENTION", "12h")
    settings = StoreSettings.from_env()
    assert (settings.path_style, settings.retention_s) == (False, 12 * 3600)
    monkeypatch.delenv("SPEC2SHIP_STORE")
    assert StoreSettings.from_env().folder_path(tmp_path) == tmp_path / "store"


class socket_closed_port:
    """A port on this machine that nothing listens on (bound, never listened, closed on exit)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self._sock.close()


class CountingStore(StoreLayer):
    """A folder store that counts the reads that reach it."""

    def __init__(self, root: Path) -> None:
        super().__init__(FolderStore(root))
        self.reads = 0

    def get(self, ref: BlobRef) -> bytes:
        self.reads += 1
        return self.inner.get(ref)


def test_the_cache_serves_repeated_reads_and_forgets_a_removed_scope(tmp_path: Path) -> None:
    counting = CountingStore(tmp_path)
    cached = CachingStore(counting, max_bytes=1024)
    ref = counting.put(SCOPE, b"read at every model call")
    assert cached.get(ref) == cached.get(ref) == b"read at every model call"
    assert counting.reads == 1
    cached.delete_scope(SCOPE)
    with pytest.raises(BlobMissing):
        cached.get(ref)
    big = [cached.put("other", bytes([n]) * 100) for n in range(20)]  # 2 kB through a 1 kB cache
    assert cached.get(big[-1]) == bytes([19]) * 100 and counting.reads == 2  # the newest is still held
    assert cached.get(big[0]) == bytes([0]) * 100 and counting.reads == 3  # the oldest was dropped
