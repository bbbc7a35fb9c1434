"""The payload codec's keys for the blob store: conversations and tool results encrypted like payloads.

`worker_store` is the store every worker process uses: the configured one (activities.store.open_store),
sealed with the codec's current key when keys are configured. A sealed blob is a marker line
(activities/store/sealed.py) and the codec's encrypted payload; blobs without the marker (stored before
encryption was turned on) read as they are, as payloads do.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.api.common.v1 import Payload

from activities.config import CodecSettings
from activities.store import BlobStore, open_store
from activities.store.base import BlobCorrupt, StoreMisconfigured
from activities.store.sealed import MARKER
from workers.codec.encryption import DecryptError, EncryptionCodec, KeyMissingError
from workers.codec.keys import load_keyring


class CodecSealer:
    def __init__(self, codec: EncryptionCodec) -> None:
        self._codec = codec

    def seal(self, data: bytes) -> bytes:
        return MARKER + self._codec.encrypt(Payload(data=data)).SerializeToString()

    def unseal(self, data: bytes) -> bytes:
        if not data.startswith(MARKER):
            return data
        try:
            return self._codec.decrypt(Payload.FromString(data[len(MARKER):])).data
        except KeyMissingError as error:
            raise StoreMisconfigured(f"a stored blob is {str(error).removeprefix('payload is ')}") from None
        except DecryptError as error:
            raise BlobCorrupt(f"a stored blob {str(error).removeprefix('payload ')}") from None


def worker_store(data_dir: Path | None = None, codec: CodecSettings | None = None) -> BlobStore:
    """The configured blob store, encrypted with the payload codec's keys when they are configured."""
    keyring = load_keyring(codec or CodecSettings.from_env())
    return open_store(data_dir, sealer=CodecSealer(EncryptionCodec(keyring)) if keyring else None)
