"""Many runs of one team asking at once: admission by signal answers every one of them, grants exactly
what the limit allows, and never hits the cap on in-flight Updates (there are none)."""

from __future__ import annotations

import asyncio
import uuid

from doubles.admission_asker import AdmissionAsker, AskInput
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.budget.activities import BudgetActivities
from contracts.activities import implementations
from contracts.budget import BudgetConfig, BudgetPeriod
from contracts.names import SHOW, budget_id
from workers.cli_budget import configure_budget
from workflows.team_budget import TeamBudget

RUNS = 60
TOKENS_EACH = 10_000
LIMIT = 215_000  # room for 21 runs


async def test_sixty_runs_of_one_team_at_once_are_all_answered_and_the_limit_holds(
        dev_env: WorkflowEnvironment) -> None:
    client: Client = dev_env.client
    queue, team = f"admission-{uuid.uuid4()}", f"team-{uuid.uuid4().hex[:6]}"
    budget = BudgetActivities(client, queue)
    workflows = [TeamBudget, AdmissionAsker]
    async with Worker(client, task_queue=queue, workflows=workflows, activities=implementations(budget)):
        await configure_budget(client, team, BudgetConfig(tokens=LIMIT, period=BudgetPeriod.month), queue)
        ask = AskInput(team=team, tokens=TOKENS_EACH)
        handles = await asyncio.gather(*(client.start_workflow(AdmissionAsker.run, ask, id=f"asker-{team}-{n}",
                                                               task_queue=queue) for n in range(RUNS)))
        answers = await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), timeout=240)
        view = await client.get_workflow_handle(budget_id(team)).query(SHOW)
        history: WorkflowHistory = await client.get_workflow_handle(budget_id(team)).fetch_history()
    granted = [a for a in answers if a.granted]
    assert len(granted) == LIMIT // TOKENS_EACH
    assert all("tokens left" in a.reason for a in answers if not a.granted)
    assert view["open_reservations"] == len(granted)
    assert view["used"]["tokens"] + view["reserved"]["tokens"] <= LIMIT
    updates = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(updates) == 1, "only the configure Update; admission took none"
