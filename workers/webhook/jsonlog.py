"""One JSON object per log line, so a log pipeline can filter deliveries by id, event, action or repo.

Fields come from `extra=` (see `app.py` and `drain.py`); secrets, headers and payloads are never logged.
Whatever a request brought (a header, a name from a payload, an error that quotes it) is cut to a few
hundred characters with control characters masked, both where it is logged (`clip`) and again by the
formatter, so a 25 MB header or a name with a newline in it cannot flood or forge log lines.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMAT = "{asctime}{levelname}{name}{message}"
# uvicorn adds a copy of each message with terminal colour codes; it is noise in a JSON log.
_DROPPED = [*RESERVED_ATTRS, "color_message"]

FIELD_LIMIT = 200
"""Characters kept of one field taken from a request (a GitHub delivery id is 36)."""
MESSAGE_LIMIT = 2000
"""Characters kept of a message: a reason may quote a few fields, never a payload."""

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clip(value: object, limit: int = FIELD_LIMIT) -> str:
    """`value` made safe for one log line: control characters shown as `?`, cut at `limit` characters
    with how many were left out (so a reader knows the value was longer than what is shown)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}...(+{len(text) - limit} chars)"
    return _UNPRINTABLE.sub("?", text)


class ClippingJsonFormatter(JsonFormatter):
    """JSON lines whose string fields are clipped, whatever a caller passed in `extra=`."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_data.items():
            if isinstance(value, str) and key not in ("exc_info", "stack_info"):
                log_data[key] = clip(value, MESSAGE_LIMIT if key == "message" else FIELD_LIMIT)
        return log_data


def json_formatter() -> logging.Formatter:
    return ClippingJsonFormatter(
        FORMAT,
        style="{",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=_DROPPED,
    )


def configure(level: int = logging.INFO) -> dict[str, object]:
    """Send the root logger (and uvicorn's) through the JSON formatter; returns uvicorn's `log_config`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": level},
        },
    }
