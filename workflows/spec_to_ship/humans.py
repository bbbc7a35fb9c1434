"""How people steer a run: each action declared once, in one table.

The workflow derives an Update (validated), its validator and a Signal of the same name from every
row: the CLI and GitHub comments use the Update (a refusal is answered), the Temporal CLI or UI may
send either (a refused Signal is logged and ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.names import APPROVE, CANCEL, OVERRIDE, REJECT, REQUEST_CHANGES, RETRY, SPEC_CHANGED
from contracts.runs import HumanAction, RunState, RunStatus


class HumanKind(StrEnum):
    """What a person asked for; the values are the Update and Signal names."""

    approve = APPROVE
    reject = REJECT
    request_changes = REQUEST_CHANGES
    override = OVERRIDE
    retry = RETRY
    cancel = CANCEL


class OutcomeKind(StrEnum):
    """How a wait for a person ended."""

    approve = APPROVE
    reject = REJECT
    request_changes = REQUEST_CHANGES
    override = OVERRIDE
    retry = RETRY
    cancelled = "cancelled"
    expired = "expired"
    pr_closed = "pr_closed"
    spec_changed = SPEC_CHANGED


@dataclass(frozen=True)
class HumanRule:
    description: str
    needs_reason: bool = False
    needs_decision: bool = False
    any_time: bool = False  # before a decision too (cancel); the others only while the run waits for a person


ACTIONS: dict[HumanKind, HumanRule] = {
    HumanKind.approve: HumanRule("Approve the change as the evidence shows it; it merges."),
    HumanKind.reject: HumanRule("Reject the change; the PR is closed. A reason is required.", needs_reason=True),
    HumanKind.request_changes: HumanRule("Send the change back to the coder with the reason as feedback.",
                                         needs_reason=True),
    HumanKind.override: HumanRule("Decide against the gate: merge or reject. A reason is required.",
                                  needs_reason=True, needs_decision=True),
    HumanKind.retry: HumanRule("Ask the coder for another attempt."),
    HumanKind.cancel: HumanRule("Cancel the run; nothing half-made is left.", any_time=True),
}


@dataclass(frozen=True)
class HumanOutcome:
    kind: OutcomeKind
    action: HumanAction | None = None

    @property
    def merges(self) -> bool:
        return self.kind is OutcomeKind.approve or (
            self.kind is OutcomeKind.override and self.action is not None and self.action.decision == "merge")

    @property
    def rejects(self) -> bool:
        return self.kind is OutcomeKind.reject or (
            self.kind is OutcomeKind.override and self.action is not None and self.action.decision == "reject")


# What the person who asked for a change may not do to it themselves, when the policy asks for four eyes.
FOUR_EYES_KINDS = {HumanKind.approve, HumanKind.override}


def four_eyes_refusal(kind: HumanKind, action: HumanAction, requested_by: str, enabled: bool) -> str | None:
    """Why `action` breaks four eyes, or None: the requester cannot approve or override their own change."""
    if not enabled or kind not in FOUR_EYES_KINDS or not requested_by.strip():
        return None
    if action.actor.strip().casefold() != requested_by.strip().casefold():
        return None
    return (f"four eyes: {action.actor} asked for this change, so someone else must {kind.value} it "
            "(policy four_eyes: true)")


def refusal(kind: HumanKind, action: HumanAction, status: RunStatus) -> str | None:
    """Why `action` may not be taken now, or None. Pure: the Update's validator and the Signal share it."""
    rule = ACTIONS[kind]
    if rule.any_time:
        if status.has_decision and status.state is not RunState.awaiting_human:
            return f"run already ended as {status.state.value}"
        return None
    if status.state is not RunState.awaiting_human:
        return (f"run {status.workflow_id} is not waiting for a human (state {status.state.value}, "
                f"stage {status.stage})")
    if rule.needs_reason and not action.reason.strip():
        return "a reason is required"
    if rule.needs_decision and action.decision is None:
        return "override needs a decision: merge or reject"
    return None
