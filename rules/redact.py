"""Redaction of secrets from tool results before they reach a model (or a log, or history).

Two layers: values the worker knows to be secret (the workspace's `.env` files, its own credentials
from the environment) are replaced wherever they appear, and well-known credential shapes (vendor
token prefixes, private keys, `password = ...` assignments, passwords in URLs) are replaced by pattern.
Redaction only sees the literal text: a secret that was encoded or transformed (base64, reversed,
split) before it reached the output is not recognised, which is why reading secrets is refused first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Well-known credential shapes. Each is anchored on a vendor prefix or structure, so ordinary code
# is left alone; generic `key = value` assignments are handled separately below.
_TOKEN_PATTERNS = [
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"glpat-[A-Za-z0-9_-]{20,}"),  # GitLab
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic keys
    re.compile(r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
    re.compile(r"npm_[A-Za-z0-9]{36}"),  # npm
    re.compile(r"hf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"),
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"ya29\.[0-9A-Za-z_-]{20,}"),  # Google OAuth access token
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWT
    re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,20000}?"
               r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|$)"),
    re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/=-]{12,}"),  # Authorization: Bearer <token>
    re.compile(r"(?i)(?<=\bbasic )[A-Za-z0-9+/=]{12,}"),  # Authorization: Basic <base64>
    re.compile(r"(?<=://)[^/\s:@]{1,256}:[^/\s@]{3,256}(?=@)"),  # scheme://user:password@host
]

# `SECRET_KEY=...`, `"api_key": "..."`, `password: ...` — the value is redacted, the name kept so
# the model still understands the file. Found by the secret-looking word first, then the separator and
# value right after the rest of the name: every pattern here runs in linear time, because redaction
# sees whole tool outputs (megabytes of `yyyy...` must not take minutes).
_SECRET_NAME = (
    r"(?:secret|token|passw(?:or)?d|passwd|api[_-]?key|private[_-]?key|access[_-]?key|account[_-]?key"
    r"|client[_-]?key|credential|authorization|_auth|signing[_-]?key|encryption[_-]?key|session[_-]?key)"
)
_SECRET_NAME_RE = re.compile(_SECRET_NAME, re.I)
_NAME_TAIL = re.compile(r"[A-Za-z0-9_.-]{0,64}")
_SEPARATOR_VALUE = re.compile(r"""["']?[ \t]*[:=][ \t]*(?P<value>"[^"\n]{4,}"|'[^'\n]{4,}'|[^\s,;'"]{4,})""")


def _redact_assignments(text: str) -> tuple[str, int]:
    pieces: list[str] = []
    count = 0
    position = 0
    search_from = 0
    while True:
        match = _SECRET_NAME_RE.search(text, search_from)
        if match is None:
            break
        tail = _NAME_TAIL.match(text, match.end())
        end = tail.end() if tail else match.end()
        value = _SEPARATOR_VALUE.match(text, end)
        if value is None or REDACTED in value.group("value"):
            search_from = max(end, match.end() + 1)
            continue
        pieces.append(text[position : value.start("value")])
        pieces.append(REDACTED)
        count += 1
        position = search_from = value.end("value")
    pieces.append(text[position:])
    return "".join(pieces), count


def redact(text: str, known_secrets: list[str] | None = None, *, assignments: bool = True) -> tuple[str, int]:
    """Return `text` with secrets replaced, and how many were replaced.

    `assignments` also redacts the value of anything named like a secret (`token = ...`): right for tool
    outputs and logs, wrong for text whose meaning must survive (a spec's `tokens: 50000`, code the agent
    writes), where only known values and credential shapes are replaced.
    """
    count = 0
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted({s for s in known_secrets or [] if s and len(s) >= 4}, key=len, reverse=True):
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text, hits = pattern.subn(REDACTED, text)
        count += hits
    if not assignments:
        return text, count
    text, hits = _redact_assignments(text)
    return text, count + hits


def redact_shapes(text: str, known_secrets: list[str] | None = None) -> str:
    """Known secret values and credential shapes replaced; everything else, `key: value` lines too, kept."""
    return redact(text, known_secrets, assignments=False)[0]


def redact_strings(value: Any, known_secrets: list[str] | None = None) -> Any:
    """Every string inside `value` (dicts, lists, nested) passed through `redact_shapes`."""
    if isinstance(value, str):
        return redact_shapes(value, known_secrets)
    if isinstance(value, dict):
        return {key: redact_strings(item, known_secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_strings(item, known_secrets) for item in value]
    return value


def contains_secret(text: str, known_secrets: list[str] | None = None) -> bool:
    """Whether `text` holds a known secret or something shaped like a credential."""
    return redact(text, known_secrets)[1] > 0


def _worth_redacting(name: str, value: str) -> bool:
    """A value from a secrets file is redacted everywhere, unless it is too plain to be a secret.

    `PORT=8080` or `DEBUG=true` would otherwise blank every `8080` and `true` in every output. Values
    under a secret-looking name are always redacted; others when long, or mixing letters and digits.
    """
    if len(value) < 4:
        return False
    if _SECRET_NAME_RE.search(name):
        return True
    if len(value) >= 12:
        return True
    return len(value) >= 8 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def dotenv_values(text: str) -> list[str]:
    """The values of a `.env` file, so they can be redacted wherever they show up later."""
    values: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, raw = stripped.split("=", 1)
        value = raw.strip().strip("'\"")
        if _worth_redacting(name.strip(), value):
            values.append(value)
    return values


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """The worker's own credentials (API keys, tokens in its environment), redacted from every output."""
    return [value for name, value in environ.items()
            if _SECRET_NAME_RE.search(name) and len(value) >= 8 and not value.startswith("/")]
