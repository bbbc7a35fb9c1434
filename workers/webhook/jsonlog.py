"""One JSON object per log line, so a log pipeline can filter deliveries by id, event, action or repo.

Fields come from `extra=` (see `app.py`); secrets, headers and payloads are never logged.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMAT = "{asctime}{levelname}{name}{message}"
# uvicorn adds a copy of each message with terminal colour codes; it is noise in a JSON log.
_DROPPED = [*RESERVED_ATTRS, "color_message"]


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
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
