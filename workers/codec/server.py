"""The codec server: Temporal's remote codec protocol, so the UI and the `temporal` CLI can show payloads.

`POST .../encode` and `POST .../decode` take and return `{"payloads": [...]}` in protobuf's JSON form
(metadata values and data as base64). Only the last path segment picks the operation, so the server
may sit under any prefix (`https://codec.example.com/spec2ship/decode`). The UI and CLI name the
namespace in `X-Namespace`. Answers: 200 with the converted payloads; 400 for a body that is not
payloads, or a payload that cannot be decrypted (the key id named); 401 without an accepted token or
trusted origin; 403 for another namespace; 404 for another path. CORS lets the UI's origins call it
from the browser, preflight included. `/healthz` and `/readyz` answer probes without authorization.

Every answered or refused request is logged with the caller ('token 2', 'origin ...'), the namespace
and the number of payloads, never a payload or a token.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from workers.codec.access import CodecAccess, Refusal
from workers.codec.encryption import CodecError

log = logging.getLogger("spec2ship.codec")

OPERATIONS = ("encode", "decode")
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]


_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def _base64(text: str) -> str:
    """Protobuf's own parser skips characters that are not base64; a garbled payload is refused instead."""
    if not _BASE64.match(text):
        raise ValueError("is not base64")
    return text


Base64 = Annotated[str, AfterValidator(_base64)]


class PayloadJson(BaseModel):
    """One `temporal.api.common.v1.Payload` in protobuf JSON; unknown proto fields are kept for protobuf."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""


class PayloadsJson(BaseModel):
    payloads: list[PayloadJson] = Field(default_factory=list)


def to_proto(body: bytes) -> Payloads:
    """The request body as protobuf `Payloads`; ValueError with a one-line reason when it is not that."""
    try:
        document = PayloadsJson.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValueError(f"{where}: {first['msg']}") from None
    try:
        return json_format.ParseDict(document.model_dump(), Payloads())
    except json_format.ParseError as error:
        raise ValueError(str(error).splitlines()[0]) from None


def to_json(payloads: Payloads) -> PayloadsJson:
    return PayloadsJson.model_validate(json_format.MessageToDict(payloads))


def create_codec_app(codec: PayloadCodec, access: CodecAccess) -> FastAPI:
    """The codec server over `codec`, answering only whom `access` allows."""
    app = FastAPI(title="spec2ship codec server", docs_url=None, redoc_url=None, openapi_url=None)
    # Outermost, so refusals carry CORS headers too and the UI can show why it was refused.
    app.add_middleware(CORSMiddleware, allow_origins=access.browser_origins, allow_methods=["POST"],
                       allow_headers=ALLOWED_HEADERS, allow_credentials=True, max_age=600)

    @app.get("/healthz")
    @app.get("/readyz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/{path:path}", response_model=PayloadsJson)
    async def convert(path: str, request: Request) -> PayloadsJson | JSONResponse:
        operation = path.rstrip("/").rsplit("/", 1)[-1]
        if operation not in OPERATIONS:
            return JSONResponse({"error": "not found: POST .../encode or .../decode"}, status_code=404)
        namespace = request.headers.get("x-namespace")
        origin = request.headers.get("origin")
        try:
            caller = access.authorize(request.headers.get("authorization"), origin)
            access.check_namespace(namespace)
        except Refusal as refusal:
            log.warning("codec request refused", extra={"operation": operation, "namespace": namespace,
                                                        "origin": origin, "status": refusal.status,
                                                        "reason": refusal.reason})
            headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            return JSONResponse({"error": refusal.reason}, status_code=refusal.status, headers=headers)
        try:
            payloads = to_proto(await request.body())
            run = codec.encode if operation == "encode" else codec.decode
            result = Payloads(payloads=await run(payloads.payloads))
        except (ValueError, CodecError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        log.info("codec request answered", extra={"operation": operation, "namespace": namespace or access.namespace,
                                                  "caller": caller, "payloads": len(payloads.payloads)})
        return to_json(result)

    return app
