"""`spec2ship codec`: payload encryption keys and the codec server the Temporal UI and CLI decode through.

Keys come from SPEC2SHIP_CODEC_KEYS, SPEC2SHIP_CODEC_KEYS_FILE or SPEC2SHIP_CODEC_KEYS_DIR, with
SPEC2SHIP_CODEC_KEY_ID naming the one that encrypts (activities/config.py, `CodecSettings`); the codec
server's bearer tokens from SPEC2SHIP_CODEC_SERVER_TOKENS or SPEC2SHIP_CODEC_SERVER_TOKENS_FILE.
Exit codes: 0 done, 1 bad configuration (one line on stderr saying what), 2 usage.
"""

from __future__ import annotations

import base64
import os
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from activities.config import CodecServerSettings, CodecSettings, TemporalSettings
from workers.codec.access import ENV_TOKENS, ENV_TOKENS_FILE, CodecAccess, load_tokens
from workers.codec.encryption import EncryptionCodec
from workers.codec.keys import ENV_KEYS, KEY_BYTES, CodecConfigError, Keyring, load_keyring
from workers.codec.server import create_codec_app
from workers.webhook import jsonlog

__all__ = ["codec_app"]

EXIT_CONFIG = 1

codec_app = typer.Typer(
    name="codec",
    help="Payload encryption: check the keys, make a key, serve the codec server for the Temporal UI and CLI.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_CONFIG)


def _keyring() -> Keyring | None:
    try:
        return load_keyring(CodecSettings.from_env())
    except CodecConfigError as error:
        raise _fail(str(error)) from None


@codec_app.command("check")
def check() -> None:
    """Say whether payloads are encrypted, under which key ids, and which one encrypts (never a key)."""
    keyring = _keyring()
    if keyring is None:
        typer.echo(f"codec off: no keys configured ({ENV_KEYS} & co. unset); payloads are stored as they are")
        return
    typer.echo(f"codec on: AES-256-GCM, new payloads under key id {keyring.current}; "
               f"decrypts key ids {', '.join(keyring.ids)}")


@codec_app.command("keygen")
def keygen() -> None:
    """Print a new random 256-bit key, base64: the value of one key id in the keys Secret."""
    typer.echo(base64.b64encode(os.urandom(KEY_BYTES)).decode())


@codec_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a pod).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8081,
    namespace: Annotated[str | None, typer.Option(
        help="The Temporal namespace served; default TEMPORAL_NAMESPACE, else 'default'.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A browser origin that may call with a token (repeatable), e.g. the UI's.")] = None,
    trusted_origin: Annotated[list[str] | None, typer.Option(
        "--trusted-origin", help="An origin whose requests need no token (repeatable); only behind the UI's "
                                 "own sign-on or on an operators' network (docs/kubernetes.md).")] = None,
    shutdown_grace: Annotated[int, typer.Option(
        "--shutdown-grace", min=0, help="Seconds requests in flight get to finish after SIGTERM.")] = 20,
) -> None:
    """Serve Temporal's remote codec protocol (POST .../encode, .../decode) for the UI and the temporal CLI."""
    keyring = _keyring()
    if keyring is None:
        raise _fail(f"no codec keys configured: set {ENV_KEYS} (or its _FILE or _DIR form) as the workers have it")
    try:
        access = CodecAccess(namespace=namespace or TemporalSettings.from_env().namespace,
                             tokens=load_tokens(CodecServerSettings.from_env()),
                             cors_origins=cors_origin or [], trusted_origins=trusted_origin or [])
    except CodecConfigError as error:
        raise _fail(str(error)) from None
    except ValidationError as error:
        raise _fail(f"--cors-origin/--trusted-origin: {error.errors()[0]['msg']}") from None
    if not access.tokens and not access.trusted_origins:
        raise _fail(f"nobody could call this codec server: set {ENV_TOKENS} or {ENV_TOKENS_FILE}, "
                    "or pass --trusted-origin")
    log_config = jsonlog.configure()
    uvicorn.run(create_codec_app(EncryptionCodec(keyring), access), host=host, port=port, log_config=log_config,
                access_log=False, timeout_graceful_shutdown=shutdown_grace)
