"""Activities for models: pick a model per role (`plan_agents`) and make one model call (`call_model`).

`plan_agents` takes, per role: the model the run names; else one of the registry's models for the
role, picked from the evidence of earlier runs (rules/selection.py, evidence from the
ModelEvidence workflow of the change's kind); else the model in SPEC2SHIP_DEFAULT_CODER /
_REVIEWER / _JUDGE; else none. `call_model` runs on the task queue of the chosen model: the CPU
queue for remote and scripted models, a GPU queue (`gpu-inference`) for models served by
spec2ship's own GPU workers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.agents.base import Provider, ProviderError
from activities.agents.observed import observed_complete
from activities.agents.providers import resolve_provider
from activities.agents.registry import (
    ConfigError,
    ModelEntry,
    ModelRegistry,
    ProviderKind,
    UnknownModelError,
    load_registry,
)
from activities.config import data_dir, default_model, task_queue
from activities.store import BlobStore, StoreError, open_store, store_failure
from activities.store.conversation import converse
from contracts.activities import ModelCalls, Planning
from contracts.agents import AgentPlan, ModelChoice, ModelRequest, ModelTurn, PlanAgentsInput, Role, is_builtin
from contracts.names import MODEL_STATS, model_evidence_id
from contracts.selection import EvidenceStats, ModelStat
from rules.selection import select_model

log = logging.getLogger(__name__)

# Kinds the agent loop drives with `call_model`; a `cli` coder runs as one `run_cli_agent` activity instead.
SELECTABLE = frozenset({ProviderKind.openai, ProviderKind.anthropic, ProviderKind.hf_local, ProviderKind.scripted})
NAMED = "named in the run request"
# A query waits for a worker to answer; the planner would rather choose without evidence than wait long.
EVIDENCE_QUERY_TIMEOUT = timedelta(seconds=10)


async def read_model_stats(client: Client, kind: str) -> list[ModelStat]:
    """The ModelEvidence record of `kind`; empty when nothing was recorded for it yet."""
    handle = client.get_workflow_handle(model_evidence_id(kind))
    try:
        answer = await handle.query(MODEL_STATS, result_type=EvidenceStats, rpc_timeout=EVIDENCE_QUERY_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return []
        raise
    return answer.stats


def provider_failure(error: ProviderError) -> ApplicationError:
    """Map a provider error onto Temporal's retry rules: auth/bad request never retry."""
    delay = timedelta(seconds=error.retry_after_s) if error.retry_after_s else None
    return ApplicationError(
        str(error), type=error.error_type, non_retryable=not error.retryable, next_retry_delay=delay
    )


class ModelActivities(Planning, ModelCalls):
    """Holds the provider resolver (a test can hand in a fake one), the shared CPU queue, where calls of
    remote and scripted models run, and the blob store that holds agents' conversations."""

    def __init__(self, resolver: object = resolve_provider, cpu_queue: str | None = None,
                 data_dir: Path | None = None, client: Client | None = None, store: BlobStore | None = None) -> None:
        self._resolve = resolver
        self._cpu_queue = cpu_queue or task_queue()
        self._data_dir = data_dir
        self._client = client  # None: no evidence to read; registry picks are then seeded draws only
        self._store = store

    @activity.defn(name="plan_agents")
    async def plan_agents(self, request: PlanAgentsInput) -> AgentPlan:
        plan = AgentPlan()
        registry: ModelRegistry | None = None
        evidence: list[ModelStat] | None = None
        seed = _seed(request)
        for role, chosen in (
            (Role.coder, request.choice.coder),
            (Role.reviewer, request.choice.reviewer),
            (Role.validator, request.choice.judge),
        ):
            if chosen is not None:
                setattr(plan, role.value, self._choice_for(role, chosen, NAMED))
                continue
            if registry is None:
                registry = _registry()
            drivable = SELECTABLE | {ProviderKind.cli} if role is Role.coder else SELECTABLE
            candidates = [entry.name for entry in registry.for_role(role) if entry.provider in drivable]
            if candidates:
                if evidence is None:
                    evidence = await self._evidence(request.kind)
                avoid = {plan.coder.model} if role is not Role.coder and plan.coder else set()
                picked = select_model(role, request.kind, candidates, evidence, seed, avoid)
                if picked is not None:
                    activity.logger.info("picked %s", picked.reason)
                    setattr(plan, role.value, self._from_entry(role, registry.get(picked.model), picked.reason))
                    continue
            fallback = default_model(role.value)
            if fallback is not None:
                model, variable = fallback
                setattr(plan, role.value, self._choice_for(role, model, f"{role.value}: {model}, from {variable}"))
        return plan

    async def _evidence(self, kind: str) -> list[ModelStat]:
        if self._client is None:
            return []
        try:
            return await read_model_stats(self._client, kind)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
            # Selection still works without evidence (it explores); a broken query must not stop the run.
            log.warning("model evidence of %r unreadable, choosing without it: %s", kind, error)
            return []

    def _choice_for(self, role: Role, model: str, reason: str) -> ModelChoice:
        if is_builtin(model):
            return ModelChoice(role=role, model=model, task_queue=self._cpu_queue, reason=reason)
        try:
            entry = _registry().get(model)
        except UnknownModelError as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        return self._from_entry(role, entry, reason)

    def _from_entry(self, role: Role, entry: ModelEntry, reason: str) -> ModelChoice:
        if entry.provider is ProviderKind.cli and role is not Role.coder:
            raise ApplicationError(
                f"model {entry.name!r} is a CLI agent: it can only be the coder (reviewers and judges must answer "
                "through submit_review / submit_judgement)", type="config", non_retryable=True)
        # Local models run where their weights are; a remote model runs on the queue the file names, else ours.
        queue = entry.task_queue if entry.queue_configured or entry.provider is ProviderKind.hf_local else (
            self._cpu_queue)
        return ModelChoice(
            role=role,
            model=entry.name,
            task_queue=queue,
            reason=reason,
            provider=entry.provider.value,
            price_in_per_mtok=entry.price.input_per_mtok,
            price_out_per_mtok=entry.price.output_per_mtok,
        )

    @activity.defn(name="call_model")
    async def call_model(self, request: ModelRequest) -> ModelTurn:
        activity.logger.info("model call %s for %s", request.model, request.attribution.role)
        try:
            provider: Provider = self._resolve(request.model)  # type: ignore[operator]
            entry = None if is_builtin(request.model) else load_registry().get(request.model)
        except (ConfigError, UnknownModelError) as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        # Span, GenAI metrics, price and a usage record (for `spec2ship costs`) around the call.
        def complete(whole: ModelRequest) -> Awaitable[ModelTurn]:
            return observed_complete(provider, whole, request_model=entry.model if entry else None,
                                     price=entry.price if entry else None, data_dir=self._data_dir or data_dir())

        try:
            return await converse(self.store, request, complete)
        except ProviderError as error:
            raise provider_failure(error) from error
        except StoreError as error:
            raise store_failure(error) from error

    @property
    def store(self) -> BlobStore:
        """The configured store, opened on first use: planning never needs it."""
        if self._store is None:
            self._store = open_store(self._data_dir)
        return self._store


def _registry() -> ModelRegistry:
    try:
        return load_registry()
    except ConfigError as error:  # the registry's own errors name the file, line and key at fault
        raise ApplicationError(str(error), type="config", non_retryable=True) from error


def _seed(request: PlanAgentsInput) -> str:
    """The run's identity: a retried planning activity draws the same numbers and picks the same models."""
    if activity.in_activity():
        info = activity.info()
        return f"{info.workflow_id}/{info.workflow_run_id}"
    return f"{request.service}/{request.kind}"
