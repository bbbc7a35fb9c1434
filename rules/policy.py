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


def parse_duration(value: Any, where: str, source: str = POLICY_PATH) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise PolicyError(f"{source}: {where}: {value!r} is not a duration; write e.g. 30m, 4h, 7d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_policy(text: str | None, defaults: str | None = None, *, defaults_name: str = "policy defaults") -> Policy:
    """The repository's policy over the platform's defaults (SPEC2SHIP_POLICY_DEFAULTS), or either alone.

    The repository's file is laid over the defaults key by key: mappings merge, a list or a value the
    repository gives replaces the default's. Defaults are defaults, not limits; the factory-protected
    paths stay protected whatever either says. An error names the file it is in.
    """
    base = _mapping(defaults, defaults_name)
    if base:
        _validated(dict(base), defaults_name)  # the defaults' own mistakes are named as theirs
    return _validated(_layered(base, _mapping(text, POLICY_PATH)), POLICY_PATH)


def _mapping(text: str | None, source: str) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{source}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    return data


def _layered(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _layered(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _validated(data: dict[str, Any], source: str) -> Policy:
    escalation = data.get("escalation")
    if isinstance(escalation, dict):
        escalation = data["escalation"] = dict(escalation)
        for key in ("remind_after", "escalate_after", "expire_after"):
            if key in escalation:
                escalation[key] = parse_duration(escalation[key], f"escalation.{key}", source)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PolicyError(f"{source}: {where}: {first['msg']}") from error
    for index, pattern in enumerate(policy.protected.opt_out):
        refusal = opt_out_refusal(pattern)
        if refusal:
            raise PolicyError(f"{source}: protected.opt_out.{index}: {refusal}")
    for field, patterns in (("protected.add", policy.protected.add), ("tests.patterns", policy.tests.patterns)):
        for index, pattern in enumerate(patterns):
            if not pattern.strip():
                raise PolicyError(f"{source}: {field}.{index}: an empty pattern; write a glob such as deploy/**")
    return policy
