"""Redaction of secrets from tool results before they reach a model (or a log, or history)."""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# Well-known credential shapes. Each is anchored on a vendor prefix or structure, so ordinary code
# is left alone; generic `key = value` assignments are handled separately below.
_TOKEN_PATTERNS = [
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic keys
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWT
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
]

# `SECRET_KEY=...`, `"api_key": "..."`, `password: ...` — the value is redacted, the name kept so
# the model still understands the file.
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<name>[A-Za-z0-9_.-]*(?:secret|token|passw(?:or)?d|api[_-]?key|private[_-]?key|access[_-]?key|credential)
      [A-Za-z0-9_.-]*)
    (?P<sep>["']?\s*[:=]\s*)
    (?P<value>"[^"\n]{4,}"|'[^'\n]{4,}'|[^\s,;'"]{4,})
    """
)


def redact(text: str, known_secrets: list[str] | None = None) -> tuple[str, int]:
    """Return `text` with secrets replaced, and how many were replaced."""
    count = 0
    for secret in known_secrets or []:
        if secret and len(secret) >= 4 and secret in text:
            count += text.count(secret)
            text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text, hits = pattern.subn(REDACTED, text)
        count += hits

    def _assignment(match: re.Match[str]) -> str:
        nonlocal count
        if REDACTED in match.group("value"):
            return match.group(0)
        count += 1
        return f"{match.group('name')}{match.group('sep')}{REDACTED}"

    text = _ASSIGNMENT.sub(_assignment, text)
    return text, count


def dotenv_values(text: str) -> list[str]:
    """The values of a `.env` file, so they can be redacted wherever they show up later."""
    values: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        value = stripped.split("=", 1)[1].strip().strip("'\"")
        if len(value) >= 4:
            values.append(value)
    return values
