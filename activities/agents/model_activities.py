"""Activities for models: pick a model per role (`plan_agents`) and make one model call (`call_model`).

`call_model` runs on the task queue of the chosen model: the CPU queue for remote and scripted
models, a GPU queue (`gpu-inference`) for models served by spec2ship's own GPU workers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agents.base import (
    AgentChoice,
    AgentPlan,
    ModelChoice,
    ModelRequest,
    ModelTurn,
    Provider,
    ProviderError,
    Role,
)
from activities.agents.registry import ConfigError, UnknownModelError, load_registry
from activities.agents.resolve import is_builtin, resolve_provider
from activities.config import data_dir, task_queue
from activities.telemetry.genai import observed_complete


class PlanAgentsInput(BaseModel):
    choice: AgentChoice
    service: str
    kind: str


def provider_failure(error: ProviderError) -> ApplicationError:
    """Map a provider error onto Temporal's retry rules: auth/bad request never retry."""
    delay = timedelta(seconds=error.retry_after_s) if error.retry_after_s else None
    return ApplicationError(
        str(error), type=error.error_type, non_retryable=not error.retryable, next_retry_delay=delay
    )


class ModelActivities:
    """Holds the provider resolver (a test can hand in a fake one) and the shared CPU queue, where
    calls of remote and scripted models run."""

    def __init__(self, resolver: object = resolve_provider, cpu_queue: str | None = None,
                 data_dir: Path | None = None) -> None:
        self._resolve = resolver
        self._cpu_queue = cpu_queue or task_queue()
        self._data_dir = data_dir

    @activity.defn(name="plan_agents")
    async def plan_agents(self, request: PlanAgentsInput) -> AgentPlan:
        plan = AgentPlan()
        for role, chosen in (
            (Role.coder, request.choice.coder),
            (Role.reviewer, request.choice.reviewer),
            (Role.validator, request.choice.judge),
        ):
            if chosen is None:
                continue
            choice = self._choice_for(role, chosen)
            setattr(plan, role.value, choice)
        return plan

    def _choice_for(self, role: Role, model: str) -> ModelChoice:
        if is_builtin(model):
            return ModelChoice(role=role, model=model, task_queue=self._cpu_queue, reason="named in the run request")
        try:
            entry = load_registry().get(model)
        except Exception as error:  # the registry's own errors name the key at fault
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        return ModelChoice(
            role=role,
            model=model,
            task_queue=entry.task_queue or self._cpu_queue,
            reason="named in the run request",
            price_in_per_mtok=entry.price.input_per_mtok if entry.price else 0.0,
            price_out_per_mtok=entry.price.output_per_mtok if entry.price else 0.0,
        )

    @activity.defn(name="call_model")
    async def call_model(self, request: ModelRequest) -> ModelTurn:
        activity.logger.info("model call %s for %s", request.model, request.attribution.role)
        try:
            provider: Provider = self._resolve(request.model)  # type: ignore[operator]
            entry = None if is_builtin(request.model) else load_registry().get(request.model)
        except (ConfigError, UnknownModelError) as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        try:
            # Span, GenAI metrics, price and a usage record (for `spec2ship costs`) around the call.
            return await observed_complete(
                provider, request, request_model=entry.model if entry else None,
                price=entry.price if entry else None, data_dir=self._data_dir or data_dir(),
            )
        except ProviderError as error:
            raise provider_failure(error) from error
