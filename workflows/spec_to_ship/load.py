"""Load: read and validate the spec and the base branch's policy; then pick a model per role.

An invalid spec ends the run with every problem located (and says so on the issue it came from).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ForgeCalls, Planning
    from contracts.agents import AgentPlan, PlanAgentsInput
    from contracts.forge import LoadedSpec, LoadSpecInput
    from contracts.names import SERVICE_KEY, TEAM_KEY
    from workflows.options import FORGE_CALL, GATE_CALL
    from workflows.patches import TELL_ISSUE_NO_CODER
    from workflows.spec_to_ship.context import RunContext
    from workflows.spec_to_ship.report import notify

NO_CODER = ("no coder configured: pass --agent (e.g. scripted:FILE or patch:FILE), configure a model with the coder "
            "role in spec2ship.yaml, or set SPEC2SHIP_DEFAULT_CODER")


async def load_spec(run: RunContext) -> LoadedSpec:
    """The spec and the policy; the run's status, search attributes and memo name its service and team."""
    request = run.request
    try:
        loaded = await run.stage("load_spec", workflow.execute_activity_method(
            ForgeCalls.load_spec, LoadSpecInput(repo=request.repo, source=request.spec),
            **FORGE_CALL, summary="read and validate the spec and the policy"))
    except ActivityError as error:
        problems = _problems(error)
        if request.issue_number is not None:
            await notify(run, "spec2ship could not start: the spec is invalid.\n\n" +
                         "\n".join(f"- `{p}`" for p in problems))
        raise run.fail(problems) from error
    spec = loaded.spec
    run.status.spec_title = spec.title
    run.status.service = spec.service
    run.status.team = spec.team
    workflow.upsert_search_attributes([SERVICE_KEY.value_set(spec.service), TEAM_KEY.value_set(spec.team)])
    workflow.upsert_memo({"title": spec.title, "service": spec.service, "team": spec.team})
    return loaded


async def plan_agents(run: RunContext) -> AgentPlan:
    """A model per role, from the request, the registry and the evidence; no coder ends the run."""
    assert run.spec is not None
    plan = await run.stage("plan", workflow.execute_activity_method(
        Planning.plan_agents,
        PlanAgentsInput(choice=run.request.agents, service=run.spec.service, kind=run.spec.kind.value),
        **GATE_CALL, summary="pick a model per role"))
    run.plan = plan
    if plan.coder is None:
        # Runs started from an issue used to fail here without a word on the issue.
        if run.request.issue_number is not None and workflow.patched(TELL_ISSUE_NO_CODER.id):
            await notify(run, f"spec2ship could not start: {NO_CODER}.")
        raise run.fail([NO_CODER])
    return plan


def _problems(error: ActivityError) -> list[str]:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        details = list(cause.details) if cause.details else []
        if details and isinstance(details[0], list):
            return [str(item) for item in details[0]]
        return [cause.message]
    return [str(error)]
