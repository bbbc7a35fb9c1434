"""With the payload codec on, the blob store holds ciphertext: what left history is encrypted like history."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import SecretStr
from store.conftest import Backend

from activities.config import CodecSettings
from activities.store import StoreMisconfigured
from activities.store.sealed import MARKER
from workers.codec.blobs import worker_store

SCOPE = "spec2ship/greeter/sealed-1/coder/0-1"
SECRET_TEXT = b"the conversation: the spec, the repository's files, the model's answers"


KEYS = {"k1": os.urandom(32), "k2": os.urandom(32)}


def _codec(key_id: str) -> CodecSettings:
    """The codec configured with one key, as `SPEC2SHIP_CODEC_KEYS=ID:BASE64` gives it."""
    return CodecSettings(keys=SecretStr(f"{key_id}:{base64.b64encode(KEYS[key_id]).decode()}"))


def test_blobs_are_sealed_with_the_codec_key_and_read_back(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)
    sealed = worker_store(codec=_codec("k1"))
    ref = sealed.put(SCOPE, SECRET_TEXT)
    raw = backend.store.get(ref)  # the backend's own bytes, verified against the name
    assert raw.startswith(MARKER) and SECRET_TEXT not in raw
    assert sealed.get(ref) == SECRET_TEXT
    assert worker_store(codec=_codec("k1")).get(ref) == SECRET_TEXT  # another worker, same keys, no cache

    plain = backend.store.put(SCOPE, b"stored before the codec was turned on")
    assert sealed.get(plain) == b"stored before the codec was turned on"

    with pytest.raises(StoreMisconfigured, match="key id 'k1', which is not configured here"):
        worker_store(codec=_codec("k2")).get(ref)
    with pytest.raises(StoreMisconfigured, match="this worker has no codec keys"):
        worker_store(codec=CodecSettings()).get(ref)
