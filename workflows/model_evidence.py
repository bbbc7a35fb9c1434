"""ModelEvidence: one long-lived workflow per kind of change, holding each model's record per role.

The planner (`plan_agents`) queries it to pick models; the ledger activity signals it when a run
ends. State lives in Temporal (no database): the run input is the whole state, carried through
continue-as-new. Counting is in rules/selection.py (pure, tested without a server).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.names import MODEL_EVIDENCE, MODEL_STATS, RECORD_MODEL_OUTCOME
    from contracts.selection import EvidenceState, EvidenceStats, ModelOutcome
    from rules.selection import record_outcome, stats_of


@workflow.defn(name=MODEL_EVIDENCE)
class ModelEvidence:
    @workflow.init
    def __init__(self, state: EvidenceState) -> None:
        # Signals that arrive before the first task run before `run`: the state must exist already.
        self._state = state

    @workflow.run
    async def run(self, state: EvidenceState) -> None:
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested())
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._state)

    @workflow.signal(name=RECORD_MODEL_OUTCOME)
    def record(self, outcome: ModelOutcome) -> None:
        if outcome.kind != self._state.kind:
            workflow.logger.warning("ignored an outcome of kind %r sent to the evidence of %r (%s)",
                                    outcome.kind, self._state.kind, outcome.key)
            return
        record_outcome(self._state, outcome)

    @workflow.query(name=MODEL_STATS)
    def stats(self) -> EvidenceStats:
        return stats_of(self._state)
