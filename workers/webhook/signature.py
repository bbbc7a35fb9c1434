"""GitHub's delivery signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.

Verified on the raw bytes, before any parsing, with a constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value GitHub sends for `body` (also used by tests and the fake GitHub)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True only when `header` is present, well formed, and matches `body` under `secret`."""
    if not header or not header.startswith(PREFIX) or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())
