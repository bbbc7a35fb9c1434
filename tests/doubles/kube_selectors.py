"""Kubernetes label selectors as the API server reads them (equality- and set-based), for the fake API server.

kmock has none; the backend finds previews, pods and synced Services by label, so the fake must filter
exactly as the real server does: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, joined
by commas (AND). A malformed selector is an error (the real server answers 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Requirement = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9]([A-Za-z0-9_./-]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)$")
_EQUALITY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<neg>!)?\s*(?P<key>{_KEY})$")


class SelectorError(ValueError):
    pass


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def _requirement(text: str) -> Requirement:
    if match := _SET.match(text):
        key = match["key"]
        values = {value.strip() for value in match["values"].split(",")}
        if any(not re.fullmatch(_VALUE, value) for value in values):
            raise SelectorError(f"invalid value in {text!r}")
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(text):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(text):
        key = match["key"]
        if match["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement {text!r}")


def parse_selector(selector: str | None) -> Requirement:
    """A predicate over an object's labels; an empty selector matches everything."""
    if selector is None or not selector.strip():
        return lambda labels: True
    parts = _split(selector)
    if any(part == "" for part in parts):
        raise SelectorError(f"empty requirement in {selector!r}")
    requirements = [_requirement(part) for part in parts]
    return lambda labels: all(requirement(labels) for requirement in requirements)
