"""Who may have the codec server encode or decode: the one decision, kept apart from HTTP.

Two ways in. A bearer token from the configured list (the `temporal` CLI's `--codec-auth`, scripts),
compared in constant time. Or a request whose `Origin` is a trusted origin: the Temporal UI, which
cannot send a static token (it sends either nothing or its user's own OIDC access token). An Origin
header proves nothing about a caller that is not a browser, so a trusted origin is only as strong as the
network path in front of the server: the same single sign-on proxy as the UI, or a network only
operators reach. docs/kubernetes.md says so where it tells how to configure it.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator

from activities.config import CodecServerSettings
from workers.codec.keys import CodecConfigError, read_config_file

ENV_TOKENS = "SPEC2SHIP_CODEC_SERVER_TOKENS"
ENV_TOKENS_FILE = "SPEC2SHIP_CODEC_SERVER_TOKENS_FILE"
MIN_TOKEN_CHARS = 16
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


class Refusal(Exception):
    """A request the server will not serve: its HTTP status and a reason that is safe to send back."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CodecAccess(BaseModel):
    """The codec server's namespace, and who may call it."""

    namespace: str = Field(min_length=1)
    tokens: list[SecretStr] = Field(default_factory=list, repr=False)
    cors_origins: list[str] = Field(default_factory=list, description="Browsers at these origins may call.")
    trusted_origins: list[str] = Field(default_factory=list, description="These need no token (see the module).")

    @field_validator("cors_origins", "trusted_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        cleaned = [origin.strip().rstrip("/") for origin in origins]
        for origin in cleaned:
            if not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin; write scheme://host[:port], e.g. "
                                 "https://temporal.example.com")
        return cleaned

    @property
    def browser_origins(self) -> list[str]:
        """Origins CORS lets a browser call from: trusted ones are browser origins too."""
        return sorted({*self.cors_origins, *self.trusted_origins})

    def authorize(self, authorization: str | None, origin: str | None) -> str:
        """Who the caller is, for the audit log ('token 2', 'origin https://...'); `Refusal` otherwise."""
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            offered = presented.strip().encode()
            for number, token in enumerate(self.tokens, start=1):
                if hmac.compare_digest(offered, token.get_secret_value().encode()):
                    return f"token {number}"
        if origin and origin.rstrip("/") in self.trusted_origins:
            return f"origin {origin}"
        if authorization:
            raise Refusal(401, "the Authorization header carries no token this codec server accepts")
        raise Refusal(401, "send Authorization: Bearer <token> (temporal --codec-auth), or call from a trusted origin")

    def check_namespace(self, namespace: str | None) -> None:
        """The UI and CLI name the namespace in X-Namespace; a request for another one is refused."""
        if namespace and namespace != self.namespace:
            raise Refusal(403, f"this codec server serves namespace {self.namespace!r}, not {namespace!r}")


def load_tokens(settings: CodecServerSettings) -> list[SecretStr]:
    """The allowed bearer tokens, from the variable or the mounted file; too short a token is refused."""
    if settings.tokens is not None and settings.tokens_file:
        raise CodecConfigError(f"{ENV_TOKENS} and {ENV_TOKENS_FILE} are both set: set only one")
    if settings.tokens is not None:
        where, text = ENV_TOKENS, settings.tokens.get_secret_value().replace(",", "\n")
    elif settings.tokens_file:
        where = f"{ENV_TOKENS_FILE}={settings.tokens_file}"
        text = read_config_file(Path(settings.tokens_file), where)
    else:
        return []
    tokens = [line.strip() for line in text.splitlines() if line.strip()]
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS or " " in token:
            raise CodecConfigError(f"{where}: token {number} is shorter than {MIN_TOKEN_CHARS} characters or holds "
                                   "a space; use a long random token (e.g. `openssl rand -hex 32`)")
    if not tokens:
        raise CodecConfigError(f"{where} holds no token")
    return [SecretStr(token) for token in tokens]
