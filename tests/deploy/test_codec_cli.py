"""`spec2ship codec` and the key check every command makes, run as real processes, as a pod runs them."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from doubles.processes import free_port, spec2ship_binary, start, stop, wait_for_status
from temporalio.api.common.v1 import Payload

from workers.codec.encryption import EncryptionCodec
from workers.codec.keys import Keyring

KEY = bytes(range(32))
KEY64 = base64.b64encode(KEY).decode()
SHORT64 = base64.b64encode(b"sixteen bytes!!!").decode()
TOKEN = "ops-token-0123456789abcdef"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SPEC2SHIP_CODEC")}
    return subprocess.run([spec2ship_binary(), *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("command", [["list"], ["worker"], ["codec", "serve"]])
def test_a_bad_key_is_one_line_and_exit_1_before_any_command_runs(command: list[str]) -> None:
    done = run(*command, SPEC2SHIP_CODEC_KEYS=f"k1:{SHORT64}")
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("error: SPEC2SHIP_CODEC_KEYS: key 'k1' is 16 bytes after base64 decoding; AES-256-GCM "
                           "needs 32 (make one with `spec2ship codec keygen`)\n")
    assert done.stdout == ""


def test_check_names_the_key_ids_and_the_current_one_never_a_key() -> None:
    done = run("codec", "check", SPEC2SHIP_CODEC_KEYS=f"old:{KEY64},new:{KEY64}", SPEC2SHIP_CODEC_KEY_ID="new")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "codec on: AES-256-GCM, new payloads under key id new; decrypts key ids new, old\n"
    off = run("codec", "check")
    assert off.returncode == 0 and off.stdout.startswith("codec off: no keys configured")


def test_keygen_makes_a_fresh_256_bit_key_even_while_the_configured_ones_are_broken() -> None:
    first = run("codec", "keygen", SPEC2SHIP_CODEC_KEYS="k1:broken")
    second = run("codec", "keygen")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert len(base64.b64decode(first.stdout.strip(), validate=True)) == 32
    assert first.stdout != second.stdout


@pytest.mark.parametrize(("args", "env", "message"), [
    ([], {"SPEC2SHIP_CODEC_KEYS": f"k1:{KEY64}"}, "error: nobody could call this codec server"),
    ([], {}, "error: no codec keys configured"),
    (["--trusted-origin", "temporal.example.com"], {"SPEC2SHIP_CODEC_KEYS": f"k1:{KEY64}"},
     "is not an origin; write scheme://host[:port]"),
    ([], {"SPEC2SHIP_CODEC_KEYS": f"k1:{KEY64}", "SPEC2SHIP_CODEC_SERVER_TOKENS": "short"},
     "SPEC2SHIP_CODEC_SERVER_TOKENS: token 1 is shorter than 16 characters"),
])
def test_serve_refuses_a_configuration_that_cannot_work(args: list[str], env: dict[str, str], message: str) -> None:
    done = run("codec", "serve", *args, **env)
    assert done.returncode == 1
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


async def test_codec_serve_decodes_for_a_token_from_a_mounted_secret_and_stops_on_sigterm(tmp_path: Path) -> None:
    keys, tokens = tmp_path / "codec-keys", tmp_path / "codec-tokens"
    keys.mkdir()
    (keys / "2025-01").write_text(KEY64 + "\n")
    tokens.write_text(f"{TOKEN}\n")
    port, log = free_port(), tmp_path / "codec.log"
    env = {**os.environ, "SPEC2SHIP_CODEC_KEYS_DIR": str(keys), "SPEC2SHIP_CODEC_SERVER_TOKENS_FILE": str(tokens),
           "TEMPORAL_NAMESPACE": "spec2ship"}
    process = start(["codec", "serve", "--port", str(port), "--cors-origin", "http://localhost:8233",
                     "--shutdown-grace", "2"], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_status, f"{base}/healthz", 200, process, log)
        codec = EncryptionCodec(Keyring.model_validate({"current": "2025-01", "keys": {"2025-01": KEY}}))
        sealed = codec.encrypt(Payload(metadata={"encoding": b"json/plain"}, data=b'"the secret"'))
        body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                              "data": base64.b64encode(sealed.data).decode()}]}
        async with httpx.AsyncClient(base_url=base) as http:
            decoded = await http.post("/decode", json=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                                     "X-Namespace": "spec2ship"})
            refused = await http.post("/decode", json=body, headers={"X-Namespace": "spec2ship"})
        assert decoded.status_code == 200, decoded.text
        assert base64.b64decode(decoded.json()["payloads"][0]["data"]) == b'"the secret"'
        assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM)
        logged = log.read_text()
        assert '"caller": "token 1"' in logged and "the secret" not in logged and TOKEN not in logged
    finally:
        stop(process)
