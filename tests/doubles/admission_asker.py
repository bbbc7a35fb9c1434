"""A tiny workflow standing in for SpecToShip's admission stage: ask the team budget by activity, then
wait for its answer by signal. Admission tests start many of them at once."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import BudgetCalls
    from contracts.budget import AdmissionAnswer, AdmissionInput, AdmissionRequest
    from contracts.names import ADMISSION


class AskInput(BaseModel):
    team: str
    tokens: int


@workflow.defn(name="AdmissionAsker")
class AdmissionAsker:
    @workflow.init
    def __init__(self, request: AskInput) -> None:
        self.answer: AdmissionAnswer | None = None

    @workflow.signal(name=ADMISSION)
    def admission(self, answer: AdmissionAnswer) -> None:
        self.answer = answer

    @workflow.run
    async def run(self, request: AskInput) -> AdmissionAnswer:
        me = workflow.info().workflow_id
        ask = AdmissionRequest(run_id=me, tokens=request.tokens, reply_to=me)
        await workflow.execute_activity_method(BudgetCalls.request_admission,
                                               AdmissionInput(team=request.team, request=ask),
                                               start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self.answer is not None)
        assert self.answer is not None
        return self.answer
