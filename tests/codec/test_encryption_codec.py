"""EncryptionCodec on its own: round trip, rotation, pass-through, and the errors that name a key id."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from activities.config import CodecSettings
from workers.codec.encryption import ENCODING, KEY_ID, DecryptError, EncryptionCodec, KeyMissingError
from workers.codec.keys import Keyring
from workers.temporal_client import data_converter

SECRET = "sk-live-4f9c2e7a1b"
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def codec(current: str, **keys: bytes) -> EncryptionCodec:
    return EncryptionCodec(Keyring(current=current, keys={k: SecretBytes(v) for k, v in keys.items()}))


def plain(text: str = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "custom": b"kept"}, data=f'"{text}"'.encode())


async def test_round_trip_restores_the_payload_exactly_and_hides_data_and_metadata() -> None:
    one = codec("a", a=KEY_A)
    original = plain()
    [sealed] = await one.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"a"
    assert set(sealed.metadata) == {"encoding", KEY_ID}, "the original metadata is inside the ciphertext"
    assert SECRET.encode() not in sealed.SerializeToString() and b"json/plain" not in sealed.data
    assert await one.decode([sealed]) == [original]


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    one = codec("a", a=KEY_A)
    first, second = await one.encode([plain(), plain()])
    assert first.data != second.data


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    before = codec("2024", **{"2024": KEY_A})
    [old] = await before.encode([plain("written before rotation")])
    after = codec("2025", **{"2024": KEY_A, "2025": KEY_B})
    [new] = await after.encode([plain("written after rotation")])
    assert new.metadata[KEY_ID] == b"2025"
    assert await after.decode([old, new]) == [plain("written before rotation"), plain("written after rotation")]
    with pytest.raises(KeyMissingError) as raised:
        await before.decode([new])
    assert raised.value.key_id == "2025"


async def test_payloads_that_are_not_encrypted_pass_through_decoding() -> None:
    """Histories written before encryption was turned on still read."""
    one = codec("a", a=KEY_A)
    untouched = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    assert await one.decode(untouched) == untouched


async def test_a_missing_key_is_an_error_that_names_the_key_id() -> None:
    [sealed] = await codec("gone", gone=KEY_A).encode([plain()])
    with pytest.raises(KeyMissingError, match=r"key id 'gone', which is not configured here \(configured: a\)"):
        await codec("a", a=KEY_B).decode([sealed])


async def test_a_wrong_key_under_the_right_id_or_altered_data_fails_authentication() -> None:
    [sealed] = await codec("a", a=KEY_A).encode([plain()])
    with pytest.raises(DecryptError, match="key id 'a' cannot be decrypted: authentication failed"):
        await codec("a", a=KEY_B).decode([sealed])
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(DecryptError, match="authentication failed"):
        await codec("a", a=KEY_A).decode([altered])
    relabelled = Payload(metadata={"encoding": ENCODING, KEY_ID: b"b"}, data=sealed.data)
    with pytest.raises(DecryptError, match="key id 'b'"):
        await codec("b", a=KEY_A, b=KEY_A).decode([relabelled])


class Order(BaseModel):
    token: str
    at: datetime


async def test_the_data_converter_is_the_pydantic_one_with_the_codec_when_keys_are_configured() -> None:
    assert data_converter(CodecSettings()) is pydantic_data_converter
    converter = data_converter(CodecSettings(keys=SecretStr(f"k1:{base64.b64encode(KEY_A).decode()}")))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    order = Order(token=SECRET, at=datetime(2025, 1, 2, tzinfo=UTC))
    [payload] = await converter.encode([order])
    assert SECRET.encode() not in payload.SerializeToString()
    assert await converter.decode([payload], [Order]) == [order]
