"""Blobs encrypted before they leave the worker, when the payload codec is on.

The conversation and tool results used to be workflow payloads, which the optional payload codec encrypts;
in the store they get the same protection. A `Sealer` (the codec's, built by the worker from its keys:
workers/codec/blobs.py) seals each blob before it is stored and opens it when read. A blob's name is the
sha256 of the sealed bytes, so the backend's check on every read still holds; with random nonces a
repeated put writes a second sealed copy rather than the same name (both are removed with their scope).
"""

from __future__ import annotations

from typing import Protocol

from activities.store.base import BlobStore, StoreLayer, StoreMisconfigured
from contracts.store import BlobRef

MARKER = b"spec2ship-sealed-blob:1\n"
"""The first line of every sealed blob, so that a worker without the keys says so instead of misreading it."""


class Sealer(Protocol):
    def seal(self, data: bytes) -> bytes: ...

    def unseal(self, data: bytes) -> bytes:
        """The plain bytes; bytes that were stored before sealing was turned on come back as they are."""
        ...


class NoKeys:
    """The sealer of a worker without codec keys: stores plain bytes, and refuses to misread sealed ones."""

    def seal(self, data: bytes) -> bytes:
        return data

    def unseal(self, data: bytes) -> bytes:
        if data.startswith(MARKER):
            raise StoreMisconfigured("a stored blob is encrypted with the payload codec, and this worker has no "
                                     "codec keys: give every worker the same SPEC2SHIP_CODEC_KEYS* settings")
        return data


class SealedStore(StoreLayer):
    def __init__(self, inner: BlobStore, sealer: Sealer) -> None:
        super().__init__(inner)
        self.sealer = sealer

    def put(self, scope: str, data: bytes) -> BlobRef:
        return self.inner.put(scope, self.sealer.seal(data))

    def get(self, ref: BlobRef) -> bytes:
        return self.sealer.unseal(self.inner.get(ref))
