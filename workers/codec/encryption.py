"""`EncryptionCodec`: AES-256-GCM over whole payloads, with the key id in the clear so keys can rotate.

An encrypted payload carries `encoding: binary/encrypted` and `encryption-key-id: <id>` as metadata,
and `nonce (12 bytes) || ciphertext || tag` as data. The ciphertext is the original payload
serialized, metadata included, so the original encoding is hidden too and comes back exactly. The
key id is bound as associated data: relabelling a payload with another id makes it fail to decrypt.

Payloads without the encrypted encoding pass through decoding untouched, so histories written before
encryption was turned on still read. A payload under a key this process lacks is an error, never a
silent pass-through: the worker then fails the task, and Temporal retries it until a worker with the
key picks it up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from workers.codec.keys import ENV_KEYS, Keyring

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(Exception):
    """A payload could not be decrypted; the message names the key id and what to do."""


class KeyMissingError(CodecError):
    def __init__(self, key_id: str, configured: list[str]) -> None:
        self.key_id = key_id
        super().__init__(f"payload is encrypted with key id {key_id!r}, which is not configured here (configured: "
                         f"{', '.join(configured)}): add that key to {ENV_KEYS} (or the keys Secret) as a "
                         "decrypt-only key")


class DecryptError(CodecError):
    def __init__(self, key_id: str, why: str) -> None:
        self.key_id = key_id
        super().__init__(f"payload encrypted with key id {key_id!r} cannot be decrypted: {why}")


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class EncryptionCodec(PayloadCodec):
    """Encrypts with the keyring's current key; decrypts with whichever key a payload names."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.material()}

    @property
    def current_key_id(self) -> str:
        return self._keyring.current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) if is_encrypted(payload) else payload for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.current
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe for far more than 2**32 payloads per key
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        if not key_id:
            raise DecryptError("(none)", f"the payload has no {KEY_ID} metadata; it was not written by this codec")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyMissingError(key_id, self._keyring.ids)
        if len(payload.data) < NONCE_BYTES + 16:
            raise DecryptError(key_id, "the data is shorter than a nonce and a tag")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise DecryptError(key_id, "authentication failed: the key configured under that id is not the one "
                                       "that encrypted it, or the payload was altered") from None
        return Payload.FromString(plain)
