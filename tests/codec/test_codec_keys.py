"""Codec keys from the environment, a file or a mounted Secret folder; every mistake is one precise line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from activities.config import CodecSettings, TemporalSettings
from workers.codec.keys import CodecConfigError, load_keyring

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
A64 = base64.b64encode(KEY_A).decode()
B64 = base64.b64encode(KEY_B).decode()


def test_no_key_source_means_no_codec() -> None:
    assert load_keyring(CodecSettings()) is None
    assert load_keyring(CodecSettings.from_env({})) is None


def test_keys_from_the_environment_with_the_current_one_named() -> None:
    settings = CodecSettings.from_env({"SPEC2SHIP_CODEC_KEYS": f"old:{A64}, new:{B64}",
                                       "SPEC2SHIP_CODEC_KEY_ID": "new"})
    keyring = load_keyring(settings)
    assert keyring is not None
    assert keyring.current == "new"
    assert dict(keyring.material()) == {"old": KEY_A, "new": KEY_B}


def test_one_key_is_current_without_being_named_and_url_safe_base64_is_accepted() -> None:
    url_safe = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    keyring = load_keyring(CodecSettings.from_env({"SPEC2SHIP_CODEC_KEYS": f"only:{url_safe}"}))
    assert keyring is not None and keyring.current == "only" and dict(keyring.material()) == {"only": KEY_B}


def test_temporal_settings_carry_the_codec_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEC2SHIP_CODEC_KEYS", f"k1:{A64}")
    settings = TemporalSettings.from_env()
    assert settings.codec.keys is not None
    assert A64 not in repr(settings), "key material never appears in a repr"


def test_keys_from_a_file_in_the_list_format(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"2024-07:{A64}\n2025-01:{B64}\n")
    keyring = load_keyring(CodecSettings(keys_file=str(keys), key_id="2025-01"))
    assert keyring is not None and keyring.current == "2025-01" and keyring.ids == ["2024-07", "2025-01"]


def test_keys_from_a_mounted_secret_folder_as_kubernetes_lays_it_out(tmp_path: Path) -> None:
    """Kubernetes mounts each Secret key as a link to a file in a hidden, timestamped folder."""
    data = tmp_path / "..2025_01_01_00_00_00.000000000"
    data.mkdir()
    (data / "2024-07").write_text(A64 + "\n")
    (data / "2025-01").write_text(B64)
    (tmp_path / "..data").symlink_to(data.name)
    for name in ("2024-07", "2025-01"):
        (tmp_path / name).symlink_to(Path("..data") / name)
    keyring = load_keyring(CodecSettings.from_env({"SPEC2SHIP_CODEC_KEYS_DIR": str(tmp_path),
                                                   "SPEC2SHIP_CODEC_KEY_ID": "2025-01"}))
    assert keyring is not None
    assert dict(keyring.material()) == {"2024-07": KEY_A, "2025-01": KEY_B}


SHORT = base64.b64encode(b"0123456789abcdef").decode()


@pytest.mark.parametrize(("env", "expected"), [
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{SHORT}"},
     "SPEC2SHIP_CODEC_KEYS: key 'k1' is 16 bytes after base64 decoding; AES-256-GCM needs 32"),
    ({"SPEC2SHIP_CODEC_KEYS": "k1:not*base64"}, "SPEC2SHIP_CODEC_KEYS: key 'k1' is not base64"),
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{A64},{B64}"}, "SPEC2SHIP_CODEC_KEYS: entry 2 is not ID:BASE64KEY"),
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{A64},k1:{B64}"}, "key id 'k1' appears twice"),
    ({"SPEC2SHIP_CODEC_KEYS": f"bad id:{A64}"}, "key id 'bad id' is not 1-64 letters"),
    ({"SPEC2SHIP_CODEC_KEYS": " , "}, "SPEC2SHIP_CODEC_KEYS holds no keys"),
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{A64},k2:{B64}"},
     "SPEC2SHIP_CODEC_KEY_ID is unset and 2 keys are configured (k1, k2): name the one that encrypts"),
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{A64}", "SPEC2SHIP_CODEC_KEY_ID": "k9"},
     "SPEC2SHIP_CODEC_KEY_ID='k9' names no configured key (configured: k1)"),
    ({"SPEC2SHIP_CODEC_KEY_ID": "k1"}, "SPEC2SHIP_CODEC_KEY_ID is set but no keys are"),
    ({"SPEC2SHIP_CODEC_KEYS": f"k1:{A64}", "SPEC2SHIP_CODEC_KEYS_DIR": "/nowhere"},
     "SPEC2SHIP_CODEC_KEYS and SPEC2SHIP_CODEC_KEYS_DIR are both set"),
    ({"SPEC2SHIP_CODEC_KEYS_FILE": "/nowhere/keys"}, "SPEC2SHIP_CODEC_KEYS_FILE=/nowhere/keys cannot be read"),
    ({"SPEC2SHIP_CODEC_KEYS_DIR": "/nowhere"}, "SPEC2SHIP_CODEC_KEYS_DIR=/nowhere is not a folder"),
])
def test_a_bad_configuration_is_one_line_that_says_what_is_wrong(env: dict[str, str], expected: str) -> None:
    with pytest.raises(CodecConfigError) as raised:
        load_keyring(CodecSettings.from_env(env))
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
    for material in (A64, B64, SHORT):
        assert material not in message, "an error never shows key material"


def test_an_empty_or_unreadable_secret_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".hidden").write_text(A64)
    with pytest.raises(CodecConfigError, match="holds no key files"):
        load_keyring(CodecSettings(keys_dir=str(tmp_path)))
    (tmp_path / "k1").write_bytes(b"\xff\xfe binary")
    with pytest.raises(CodecConfigError, match=r"\(file k1\) cannot be read \(not UTF-8 text\)"):
        load_keyring(CodecSettings(keys_dir=str(tmp_path)))
