"""The `/spec2ship ...` comment commands: parsing, usage text, and the workflow update each one sends.

Grammar (the first word after `/spec2ship` is the verb; the rest of the comment, newlines included,
is the reason):

    /spec2ship approve [reason]
    /spec2ship reject <reason>
    /spec2ship request-changes <comment>
    /spec2ship override merge|reject <reason>
    /spec2ship retry [reason]
    /spec2ship cancel [reason]

A reason is required where the action cannot be understood later without one (reject, request-changes,
override); `retry` and `cancel` take an optional note, which the run records like any reason.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from contracts.names import APPROVE, CANCEL, OVERRIDE, REJECT, REQUEST_CHANGES, RETRY
from contracts.runs import HumanAction

PREFIX = "/spec2ship"

USAGE = """\
Usage (in a comment on the spec's issue or on its pull request):

```
/spec2ship approve [reason]
/spec2ship reject <reason>
/spec2ship request-changes <comment>
/spec2ship override merge|reject <reason>
/spec2ship retry [reason]
/spec2ship cancel [reason]
```

Only people with write or admin permission on the repository can steer a run."""

# `/spec2ship` must stand alone: `/spec2shipper` is someone else's command.
_COMMAND = re.compile(r"\A\s*/spec2ship(?=\s|\Z)\s*(?P<verb>\S*)\s*(?P<rest>.*)\Z", re.DOTALL | re.IGNORECASE)


class Verb(StrEnum):
    approve = "approve"
    reject = "reject"
    request_changes = "request-changes"
    override = "override"
    retry = "retry"
    cancel = "cancel"


UPDATE_FOR: dict[Verb, str] = {
    Verb.approve: APPROVE,
    Verb.reject: REJECT,
    Verb.request_changes: REQUEST_CHANGES,
    Verb.override: OVERRIDE,
    Verb.retry: RETRY,
    Verb.cancel: CANCEL,
}
"""Verb -> the SpecToShip update it sends (names from contracts/names.py)."""

_NEEDS_REASON = {
    Verb.reject: "a reason: `/spec2ship reject <reason>`",
    Verb.request_changes: "what to change: `/spec2ship request-changes <comment>`",
}


class CommandError(ValueError):
    """A comment that starts with `/spec2ship` but cannot be understood; the message says what to write."""


class Command(BaseModel):
    verb: Verb
    reason: str = ""
    decision: Literal["merge", "reject"] | None = None

    @property
    def update(self) -> str:
        return UPDATE_FOR[self.verb]

    def action(self, actor: str) -> HumanAction:
        return HumanAction(actor=actor, reason=self.reason, decision=self.decision)


def is_command(body: str | None) -> bool:
    """Whether a comment is addressed to spec2ship at all (others are ignored without a reply)."""
    return bool(body) and _COMMAND.match(body or "") is not None


def parse_command(body: str) -> Command:
    """The command in a comment; raises `CommandError` (whose message names the fix) when malformed."""
    match = _COMMAND.match(body)
    if match is None:
        raise CommandError(f"a spec2ship command starts with `{PREFIX}`")
    word = match["verb"].lower()
    rest = match["rest"].strip()
    if not word:
        raise CommandError(f"`{PREFIX}` needs a command")
    try:
        verb = Verb(word)
    except ValueError:
        known = ", ".join(f"`{v.value}`" for v in Verb)
        raise CommandError(f"unknown command `{match['verb']}`; the commands are {known}") from None
    if verb is Verb.override:
        parts = rest.split(maxsplit=1)
        decision = parts[0].lower() if parts else ""
        if decision not in ("merge", "reject"):
            raise CommandError("`override` needs a decision and a reason: `/spec2ship override merge|reject <reason>`")
        reason = parts[1].strip() if len(parts) > 1 else ""
        if not reason:
            raise CommandError(f"`override {decision}` needs a reason: `/spec2ship override {decision} <reason>`")
        return Command(verb=verb, reason=reason, decision="merge" if decision == "merge" else "reject")
    if verb in _NEEDS_REASON and not rest:
        raise CommandError(f"`{verb.value}` needs {_NEEDS_REASON[verb]}")
    return Command(verb=verb, reason=rest)
