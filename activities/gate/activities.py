"""The gate as an activity: its decision lands in history, so changing the rules later never
changes what a replayed run decided."""

from __future__ import annotations

from temporalio import activity

from contracts.gate import GateDecision, GateInput
from rules.gate import decide


class GateActivities:
    @activity.defn(name="decide_gate")
    def decide_gate(self, gate: GateInput) -> GateDecision:
        return decide(gate)
