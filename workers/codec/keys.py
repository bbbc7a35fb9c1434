"""The codec's keys: read from the environment, a file or a mounted Secret, and checked before use.

Every problem is one `CodecConfigError` line that names the variable, the key id and what to do, and
never shows key material. A process refuses to start with a bad key rather than write payloads that
nobody can read later.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretBytes

from activities.config import CodecSettings

KEY_BYTES = 32
"""AES-256-GCM takes a 256-bit key."""

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""Also a valid Kubernetes Secret key and file name, and free of the `:` and `,` of the list format."""

ENV_KEYS = "SPEC2SHIP_CODEC_KEYS"
ENV_KEYS_FILE = "SPEC2SHIP_CODEC_KEYS_FILE"
ENV_KEYS_DIR = "SPEC2SHIP_CODEC_KEYS_DIR"
ENV_KEY_ID = "SPEC2SHIP_CODEC_KEY_ID"
MAKE_ONE = "make one with `spec2ship codec keygen`"


class CodecConfigError(ValueError):
    """The codec's key configuration is unusable; the message is one line and says what to fix."""


class Keyring(BaseModel):
    """Keys by id; `current` encrypts, every key decrypts what was written under its id."""

    model_config = ConfigDict(frozen=True)

    current: str
    keys: dict[str, SecretBytes]

    def material(self) -> Iterator[tuple[str, bytes]]:
        """(id, key) pairs, for the cipher alone: key material never leaves this and the codec."""
        for key_id, key in self.keys.items():
            yield key_id, key.get_secret_value()

    @property
    def ids(self) -> list[str]:
        return sorted(self.keys)


def load_keyring(settings: CodecSettings) -> Keyring | None:
    """The configured keys, or None when no key source is set (the codec is off)."""
    sources = [name for name, value in ((ENV_KEYS, settings.keys), (ENV_KEYS_FILE, settings.keys_file),
                                        (ENV_KEYS_DIR, settings.keys_dir)) if value]
    if len(sources) > 1:
        raise CodecConfigError(f"{' and '.join(sources)} are both set: set only one source of codec keys")
    if not sources:
        if settings.key_id:
            raise CodecConfigError(f"{ENV_KEY_ID} is set but no keys are: set {ENV_KEYS}, {ENV_KEYS_FILE} or "
                                   f"{ENV_KEYS_DIR}, or unset {ENV_KEY_ID}")
        return None
    if settings.keys is not None:
        keys = _keys(_list_entries(settings.keys.get_secret_value(), ENV_KEYS), ENV_KEYS)
    elif settings.keys_file:
        where = f"{ENV_KEYS_FILE}={settings.keys_file}"
        keys = _keys(_list_entries(read_config_file(Path(settings.keys_file), where), where), where)
    else:
        assert settings.keys_dir is not None
        where = f"{ENV_KEYS_DIR}={settings.keys_dir}"
        keys = _keys(_folder_entries(Path(settings.keys_dir), where), where)
    return Keyring(current=_current(settings.key_id, sorted(keys)), keys={k: SecretBytes(v) for k, v in keys.items()})


def _list_entries(text: str, where: str) -> Iterator[tuple[str, str]]:
    """`ID:BASE64` entries separated by commas or line breaks."""
    entries = [entry.strip() for entry in re.split(r"[,\n]", text) if entry.strip()]
    if not entries:
        raise CodecConfigError(f"{where} holds no keys; write ID:BASE64KEY entries separated by commas")
    for number, entry in enumerate(entries, start=1):
        key_id, colon, material = (part.strip() for part in entry.partition(":"))
        if not colon or not key_id or not material:
            raise CodecConfigError(f"{where}: entry {number} is not ID:BASE64KEY (for example "
                                   f"2025-01:<44 base64 characters>; {MAKE_ONE})")
        yield key_id, material


def _folder_entries(folder: Path, where: str) -> Iterator[tuple[str, str]]:
    """One file per key id, as Kubernetes mounts a Secret; its `..data` links and hidden files are skipped."""
    if not folder.is_dir():
        raise CodecConfigError(f"{where} is not a folder: mount the codec keys Secret there")
    files = sorted(path for path in folder.iterdir() if not path.name.startswith(".") and path.is_file())
    if not files:
        raise CodecConfigError(f"{where} holds no key files: add one key per Secret key, named by its key id")
    for path in files:
        yield path.name, read_config_file(path, f"{where} (file {path.name})")


def read_config_file(path: Path, where: str) -> str:
    """A key or token file's text; CodecConfigError naming `where` when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise CodecConfigError(f"{where} cannot be read ({reason}): fix the path or its permissions") from None


def _keys(entries: Iterator[tuple[str, str]], where: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for key_id, material in entries:
        if not KEY_ID.match(key_id):
            raise CodecConfigError(f"{where}: key id {key_id[:70]!r} is not 1-64 letters, digits, '.', '_' or '-' "
                                   "(starting with a letter or digit)")
        if key_id in keys:
            raise CodecConfigError(f"{where}: key id {key_id!r} appears twice; each id names one key")
        keys[key_id] = _decode(material, key_id, where)
    return keys


def _decode(material: str, key_id: str, where: str) -> bytes:
    text = "".join(material.split()).translate(str.maketrans("-_", "+/"))  # URL-safe base64 is accepted too
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CodecConfigError(f"{where}: key {key_id!r} is not base64; {MAKE_ONE}") from None
    if len(key) != KEY_BYTES:
        raise CodecConfigError(f"{where}: key {key_id!r} is {len(key)} bytes after base64 decoding; AES-256-GCM "
                               f"needs {KEY_BYTES} ({MAKE_ONE})")
    return key


def _current(key_id: str | None, ids: list[str]) -> str:
    if key_id:
        if key_id not in ids:
            raise CodecConfigError(f"{ENV_KEY_ID}={key_id!r} names no configured key (configured: {', '.join(ids)})")
        return key_id
    if len(ids) == 1:
        return ids[0]
    raise CodecConfigError(f"{ENV_KEY_ID} is unset and {len(ids)} keys are configured ({', '.join(ids)}): "
                           "name the one that encrypts new payloads")
