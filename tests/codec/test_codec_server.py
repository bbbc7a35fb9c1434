"""The codec server over real HTTP (uvicorn, httpx): the remote codec protocol, who may call it, and CORS
for the Temporal UI's origin."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from doubles.http_server import served
from pydantic import SecretBytes, SecretStr, ValidationError

from activities.config import CodecServerSettings
from workers.codec.access import CodecAccess, load_tokens
from workers.codec.encryption import EncryptionCodec
from workers.codec.keys import CodecConfigError, Keyring
from workers.codec.server import create_codec_app

TOKEN = "tok-0123456789abcdef0123"
SECOND_TOKEN = "tok-fedcba9876543210fedc"
UI = "https://temporal.example.com"
TRUSTED_UI = "https://temporal-sso.example.com"
NAMESPACE = "spec2ship-prod"
SECRET = b'{"token":"sk-live-4f9c2e7a1b"}'
CODEC = EncryptionCodec(Keyring(current="k1", keys={"k1": SecretBytes(bytes(range(32)))}))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain_payloads() -> dict[str, object]:
    return {"payloads": [{"metadata": {"encoding": b64(b"json/plain")}, "data": b64(SECRET)}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Namespace": NAMESPACE}


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    access = CodecAccess(namespace=NAMESPACE, tokens=[SecretStr(TOKEN), SecretStr(SECOND_TOKEN)],
                         cors_origins=[UI], trusted_origins=[TRUSTED_UI])
    async with served(create_codec_app(CODEC, access)) as client:
        yield client


async def encrypted(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.post("/encode", json=plain_payloads(), headers=bearer(TOKEN))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_encode_then_decode_round_trips_in_protobuf_json(http: httpx.AsyncClient) -> None:
    sealed = await encrypted(http)
    [payload] = sealed["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
    assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"k1"
    assert SECRET not in base64.b64decode(payload["data"])
    answer = await http.post("/decode", json=sealed, headers=bearer(SECOND_TOKEN))
    assert answer.status_code == 200, answer.text
    assert answer.json() == plain_payloads()


async def test_only_the_last_path_segment_picks_the_operation(http: httpx.AsyncClient) -> None:
    """The CLI's `{namespace}` templating and an ingress prefix both put segments in front."""
    sealed = await encrypted(http)
    answer = await http.post(f"/codec/{NAMESPACE}/decode", json=sealed, headers=bearer(TOKEN))
    assert answer.status_code == 200 and answer.json() == plain_payloads()
    assert (await http.post("/compress", json=sealed, headers=bearer(TOKEN))).status_code == 404
    assert (await http.get("/decode")).status_code == 405


async def test_payloads_that_are_not_encrypted_come_back_as_they_are(http: httpx.AsyncClient) -> None:
    answer = await http.post("/decode", json=plain_payloads(), headers=bearer(TOKEN))
    assert answer.status_code == 200 and answer.json() == plain_payloads()
    empty = await http.post("/decode", json={"payloads": []}, headers=bearer(TOKEN))
    assert empty.status_code == 200 and empty.json() == {"payloads": []}


@pytest.mark.parametrize(("headers", "status", "reason"), [
    ({"X-Namespace": NAMESPACE}, 401, "send Authorization: Bearer <token>"),
    ({"Authorization": "Bearer tok-not-a-configured-one", "X-Namespace": NAMESPACE}, 401, "carries no token"),
    ({"Authorization": TOKEN, "X-Namespace": NAMESPACE}, 401, "carries no token"),
    ({"Origin": UI, "X-Namespace": NAMESPACE}, 401, "send Authorization"),
    ({"Origin": "https://evil.example.com", "X-Namespace": NAMESPACE}, 401, "send Authorization"),
    ({**bearer(TOKEN), "X-Namespace": "someone-else"}, 403, "serves namespace 'spec2ship-prod', not 'someone-else'"),
])
async def test_an_unauthorized_caller_is_refused_and_learns_nothing(
    http: httpx.AsyncClient, headers: dict[str, str], status: int, reason: str
) -> None:
    sealed = await encrypted(http)
    answer = await http.post("/decode", json=sealed, headers=headers)
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    assert SECRET.decode() not in answer.text
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_trusted_origin_decodes_without_a_token(http: httpx.AsyncClient) -> None:
    """The UI sends no static token; its origin is trusted where sign-on guards the path to the server."""
    sealed = await encrypted(http)
    answer = await http.post("/decode", json=sealed, headers={"Origin": TRUSTED_UI, "X-Namespace": NAMESPACE,
                                                             "Authorization": "Bearer the-users-oidc-token"})
    assert answer.status_code == 200 and answer.json() == plain_payloads()
    assert answer.headers["access-control-allow-origin"] == TRUSTED_UI


async def test_cors_preflight_from_the_ui_is_answered_and_others_are_not(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
    answer = await http.options("/decode", headers={"Origin": UI, **preflight})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {header.strip().lower() for header in answer.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-namespace", "authorization"} <= allowed
    other = await http.options("/decode", headers={"Origin": "https://evil.example.com", **preflight})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    # The UI's real request carries the CORS answer too, so the browser hands it to the UI.
    sealed = await encrypted(http)
    decoded = await http.post("/decode", json=sealed, headers={"Origin": UI, **bearer(TOKEN)})
    assert decoded.status_code == 200 and decoded.headers["access-control-allow-origin"] == UI


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "Invalid JSON"),
    (b'{"payloads": [{"metadata": {"encoding": 7}}]}', "payloads.0.metadata.encoding"),
    (b'{"payloads": [{"data": "***"}]}', "data"),
])
async def test_a_body_that_is_not_payloads_is_a_400(http: httpx.AsyncClient, body: bytes, reason: str) -> None:
    answer = await http.post("/decode", content=body, headers={**bearer(TOKEN), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert reason in answer.json()["error"]


async def test_a_payload_under_an_unknown_key_is_a_400_naming_the_key_id(http: httpx.AsyncClient) -> None:
    other = EncryptionCodec(Keyring(current="k7", keys={"k7": SecretBytes(bytes(32))}))
    access = CodecAccess(namespace=NAMESPACE, tokens=[SecretStr(TOKEN)])
    async with served(create_codec_app(other, access)) as elsewhere:
        sealed = (await elsewhere.post("/encode", json=plain_payloads(), headers=bearer(TOKEN))).json()
    answer = await http.post("/decode", json=sealed, headers=bearer(TOKEN))
    assert answer.status_code == 400
    assert "key id 'k7', which is not configured here" in answer.json()["error"]


async def test_probes_answer_without_authorization(http: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz"):
        answer = await http.get(path)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_an_origin_must_be_scheme_host_and_port() -> None:
    assert CodecAccess(namespace="n", cors_origins=[f"{UI}/"]).cors_origins == [UI]
    with pytest.raises(ValidationError, match="is not an origin"):
        CodecAccess(namespace="n", trusted_origins=["https://temporal.example.com/namespaces"])


def test_tokens_come_from_the_variable_or_a_mounted_file_and_a_bad_one_is_named(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n\n{SECOND_TOKEN}\n")
    loaded = load_tokens(CodecServerSettings(tokens_file=str(tokens)))
    assert [token.get_secret_value() for token in loaded] == [TOKEN, SECOND_TOKEN]
    assert load_tokens(CodecServerSettings.from_env({"SPEC2SHIP_CODEC_SERVER_TOKENS": f"{TOKEN},{SECOND_TOKEN}"}))
    assert load_tokens(CodecServerSettings()) == []
    for settings, message in [
        (CodecServerSettings(tokens_file=str(tmp_path / "missing")), "cannot be read (No such file or directory)"),
        (CodecServerSettings(tokens=SecretStr(TOKEN), tokens_file=str(tokens)), "both set: set only one"),
        (CodecServerSettings(tokens=SecretStr(f"{TOKEN},short")), "token 2 is shorter than 16 characters"),
    ]:
        with pytest.raises(CodecConfigError, match=re.escape(message)):
            load_tokens(settings)
