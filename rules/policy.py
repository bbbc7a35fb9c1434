"""Reading `.spec2ship/policy.yaml` from the target repository (durations like `4h`, `7d`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml
from pydantic import ValidationError

from contracts.gate import POLICY_PATH, Policy
from rules.protected import opt_out_refusal

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class PolicyError(Exception):
    """The policy file is invalid; the message names the field and what to write instead."""


def parse_duration(value: Any, where: str) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise PolicyError(f"{POLICY_PATH}: {where}: {value!r} is not a duration; write e.g. 30m, 4h, 7d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_policy(text: str | None) -> Policy:
    """The repository's policy, or the org defaults when the file is absent."""
    if text is None or not text.strip():
        return Policy()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{POLICY_PATH}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise PolicyError(f"{POLICY_PATH}: expected a mapping at the top level")
    escalation = data.get("escalation")
    if isinstance(escalation, dict):
        for key in ("remind_after", "escalate_after", "expire_after"):
            if key in escalation:
                escalation[key] = parse_duration(escalation[key], f"escalation.{key}")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PolicyError(f"{POLICY_PATH}: {where}: {first['msg']}") from error
    for index, pattern in enumerate(policy.protected.opt_out):
        refusal = opt_out_refusal(pattern)
        if refusal:
            raise PolicyError(f"{POLICY_PATH}: protected.opt_out.{index}: {refusal}")
    for field, patterns in (("protected.add", policy.protected.add), ("tests.patterns", policy.tests.patterns)):
        for index, pattern in enumerate(patterns):
            if not pattern.strip():
                raise PolicyError(f"{POLICY_PATH}: {field}.{index}: an empty pattern; write a glob such as deploy/**")
    return policy
