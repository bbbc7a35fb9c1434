"""`plan_agents` picking models from the registry by evidence: unit cases, and whole runs on the dev server
with a registry file (SPEC2SHIP_CONFIG) of two scripted models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pipeline.pipeline_harness import running_workers, start_run
from selection.own_service import own_service
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.agents.model_activities import ModelActivities, read_model_stats
from activities.agents.providers import resolve_provider
from activities.agents.registry import ConfigError, load_registry, parse_registry
from activities.agents.scripted import ScriptedProvider
from activities.ledger.activities import LedgerActivities
from activities.telemetry.usage_log import read_usage
from contracts.agents import AgentChoice, Attribution, Message, ModelRequest, PlanAgentsInput, Role
from contracts.ledger import OutcomeRecord
from contracts.names import ledger_id, model_evidence_id
from contracts.runs import RunState
from workers.sample.repo import build_sample

KIND = "bugfix"  # this module's evidence; no other test module records bugfix runs of registry models


@pytest.fixture(scope="module")
def task_queue() -> str:
    """One queue for the module, as in production: the entity workflows these runs create outlive a test."""
    return f"selection-{uuid.uuid4()}"


@pytest.fixture
def registry_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """The sample's inputs with a registry beside them: `alpha` codes well, `beta` approves reviews."""
    paths = build_sample(tmp_path)
    config = paths["coder-greet.yaml"].parent / "spec2ship.yaml"
    config.write_text(
        "models:\n"
        "  - {name: alpha, provider: scripted, script: coder-greet.yaml, roles: [coder, reviewer]}\n"
        "  - {name: beta, provider: scripted, script: reviewer-approve.yaml, roles: [coder, reviewer],"
        " price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
        "  - {name: aider, provider: cli, command: 'aider --message-file {prompt_file}', roles: [reviewer]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    for name in ("SPEC2SHIP_DEFAULT_CODER", "SPEC2SHIP_DEFAULT_REVIEWER", "SPEC2SHIP_DEFAULT_JUDGE"):
        monkeypatch.delenv(name, raising=False)
    yield paths | {"config": config}


def plan_input(**choice: str) -> PlanAgentsInput:
    return PlanAgentsInput(choice=AgentChoice(**choice), service="svc", kind=KIND)


# --- unit cases: no server ---------------------------------------------------------------------


async def test_a_scripted_registry_entry_runs_from_configuration_alone(
    registry_file: dict[str, Path], tmp_path: Path
) -> None:
    entry = load_registry().get("alpha")
    assert entry.script == str(registry_file["coder-greet.yaml"])  # relative to the configuration file
    provider = resolve_provider("alpha")
    assert isinstance(provider, ScriptedProvider) and provider.path == registry_file["coder-greet.yaml"]
    models = ModelActivities(cpu_queue="cpu", data_dir=tmp_path / "data")
    turn = await models.call_model(ModelRequest(
        model="beta", messages=[Message(role="user", content="review this")],
        attribution=Attribution(team="t", service="svc", spec="s", workflow_id="wf", role=Role.reviewer)))
    assert turn.message.tool_calls[0].name == "read_file"
    assert turn.cost_usd == pytest.approx((2100 * 1.0 + 30 * 2.0) / 1_000_000)  # priced from the registry
    [usage] = read_usage(tmp_path / "data")
    assert (usage.model, usage.cost_usd) == ("beta", turn.cost_usd)
    with pytest.raises(ConfigError, match="a `scripted` model needs `script`"):
        parse_registry("models:\n  - {name: s, provider: scripted}\n")
    with pytest.raises(ConfigError, match="`script` applies only to `scripted` models"):
        parse_registry("models:\n  - {name: s, provider: openai, script: x.yaml}\n")


async def test_explicit_choices_win_and_the_reviewer_differs_from_the_coder(registry_file: dict[str, Path]) -> None:
    models = ModelActivities(cpu_queue="cpu")
    plan = await models.plan_agents(plan_input(coder="beta"))
    assert plan.coder is not None and (plan.coder.model, plan.coder.reason) == ("beta", "named in the run request")
    assert plan.coder.price_out_per_mtok == 2.0 and plan.coder.task_queue == "cpu"
    assert plan.reviewer is not None and plan.reviewer.model == "alpha"  # a cli entry never reviews
    assert plan.reviewer.reason == ("reviewer: alpha, no runs yet on bugfix; the only reviewer model other than "
                                    "the coder's")
    assert plan.validator is None  # no validator model anywhere: the role is skipped
    named = await models.plan_agents(plan_input(coder=f"scripted:{registry_file['coder-docs.yaml']}"))
    assert named.coder is not None and named.coder.model.startswith("scripted:")


async def test_without_registry_models_the_environment_defaults_apply(
    registry_file: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    judge = f"scripted:{registry_file['judge-fallback.yaml']}"
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_JUDGE", judge)
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_CODER", "beta")  # a registry name works too; evidence wins over it
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(Exception, match="model 'beta' is not in the registry"):
        await ModelActivities(cpu_queue="cpu").plan_agents(plan_input())
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(registry_file["config"]))
    plan = await ModelActivities(cpu_queue="cpu").plan_agents(plan_input())
    assert plan.validator is not None
    assert (plan.validator.model, plan.validator.reason) == (judge, f"validator: {judge}, from SPEC2SHIP_DEFAULT_JUDGE")
    assert plan.coder is not None and "no runs yet on bugfix" in plan.coder.reason


async def test_queues_follow_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "spec2ship.yaml"
    config.write_text(
        "models:\n"
        "  - {name: local, provider: hf-local, path: /nowhere, roles: [coder]}\n"
        "  - {name: remote, provider: openai, endpoint: 'http://127.0.0.1:1/v1', roles: [reviewer]}\n"
        "  - {name: pinned, provider: openai, endpoint: 'http://127.0.0.1:1/v1', task_queue: q-pinned,"
        " roles: [validator]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SPEC2SHIP_CONFIG", str(config))
    plan = await ModelActivities(cpu_queue="cpu-of-this-worker").plan_agents(plan_input())
    assert plan.coder is not None and plan.coder.task_queue == "gpu-inference"
    assert plan.reviewer is not None and plan.reviewer.task_queue == "cpu-of-this-worker"
    assert plan.validator is not None and plan.validator.task_queue == "q-pinned"


# --- whole runs on the dev server ------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def fresh_evidence(dev_env: object, task_queue: str) -> AsyncIterator[list[str]]:
    """No evidence of this module's kind left by an earlier session user; everything it starts is terminated."""
    from temporalio.testing import WorkflowEnvironment

    assert isinstance(dev_env, WorkflowEnvironment)
    client = dev_env.client
    started: list[str] = [model_evidence_id(KIND)]
    with suppress(RPCError):
        await client.get_workflow_handle(model_evidence_id(KIND)).terminate("a fresh record for the selection tests")
    yield started
    for workflow_id in started:
        with suppress(RPCError):
            await client.get_workflow_handle(workflow_id).terminate("test finished")


def past_run(service: str, n: int, coder: str, state: RunState) -> OutcomeRecord:
    finished = datetime.now(UTC) - timedelta(days=1, minutes=n)
    return OutcomeRecord(workflow_id=f"spec2ship/earlier/{service}-{n}", service=service, team="platform",
                         spec_title="earlier", kind=KIND, state=state, decision="merge", level="L5",
                         models={"coder": coder}, tokens=5000, cost_usd=0.012 if coder == "alpha" else 0.03,
                         started_at=finished - timedelta(minutes=4), finished_at=finished)


@pytest.mark.slow
async def test_a_run_with_no_models_named_gets_them_from_the_registry_by_evidence(
    dev_client: Client, task_queue: str, registry_file: dict[str, Path], fresh_evidence: list[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    judge = f"scripted:{registry_file['judge-fallback.yaml']}"
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_JUDGE", judge)
    service, spec = own_service(registry_file, kind=KIND)
    fresh_evidence.append(ledger_id(service))
    ledger = LedgerActivities(dev_client, task_queue)
    async with running_workers(dev_client, tmp_path / "data", task_queue):
        for n in range(12):  # earlier runs: alpha's changes merged, beta's failed
            await ledger.record_outcome(past_run(service, n, "alpha", RunState.merged))
            await ledger.record_outcome(past_run(service, 100 + n, "beta", RunState.failed))
        handle = await start_run(dev_client, task_queue, registry_file["repo"], spec, AgentChoice())
        status = await handle.result()
        evidence = await handle.query("evidence", result_type=str)
        after = {(s.role.value, s.model): (s.successes, s.runs) for s in await read_model_stats(dev_client, KIND)}

    assert status.state is RunState.merged, status.reasons
    assert "- coder: `alpha` (coder: alpha, success 12/12 on bugfix, $0.0120/run; best record" in evidence
    assert ("- reviewer: `beta` (reviewer: beta, no runs yet on bugfix; the only reviewer model other than the "
            "coder's)") in evidence
    assert f"- validator: `{judge}` (validator: {judge}, from SPEC2SHIP_DEFAULT_JUDGE)" in evidence
    # The run's own outcome was fed back: alpha coded it, beta approved a change that merged.
    assert after == {("coder", "alpha"): (13, 13), ("coder", "beta"): (0, 12), ("reviewer", "beta"): (1, 1)}


async def test_a_cli_agent_cannot_be_named_reviewer(registry_file: dict[str, Path]) -> None:
    with pytest.raises(ApplicationError, match="is a CLI agent: it can only be the coder"):
        await ModelActivities(cpu_queue="cpu").plan_agents(plan_input(coder="alpha", reviewer="aider"))
