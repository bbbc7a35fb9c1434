"""`spec2ship setup`, the chart's post-install/upgrade Job: against a bare dev server, twice, and refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
import pytest_asyncio
from conftest import _binary
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from contracts.names import SEARCH_ATTRIBUTES, STORE_JANITOR_SCHEDULE
from workers.cli import app
from workers.cli_setup import SetupError, ensure_search_attributes


@pytest_asyncio.fixture(scope="module")
async def bare_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server with none of spec2ship's search attributes, like a fresh cluster's Temporal."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=_binary("temporal"),
                                                data_converter=pydantic_data_converter, dev_server_log_level="error")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def address(bare_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch) -> str:
    target = bare_env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_ADDRESS", target)
    return target


def _setup(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["setup", *args])
    return result.exit_code, result.output


def _custom_attributes(client: Client) -> dict[str, int]:
    async def go() -> dict[str, int]:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
        return dict(listed.custom_attributes)

    return asyncio.run(go())


def _interval(client: Client, schedule_id: str) -> timedelta:
    async def go() -> timedelta:
        fresh = await Client.connect(client.service_client.config.target_host, namespace=client.namespace)
        described = await fresh.get_schedule_handle(schedule_id).describe()
        return described.schedule.spec.intervals[0].every

    return asyncio.run(go())


def test_setup_registers_attributes_and_creates_then_updates_the_factory_schedule(
    bare_env: WorkflowEnvironment, address: str
) -> None:
    assert not set(SEARCH_ATTRIBUTES) & set(_custom_attributes(bare_env.client))
    code, output = _setup("--factory-repo", "acme/api,acme/web", "--factory-every", "15m", "--factory-id", "fx")
    assert code == 0, output
    assert f"Temporal at {address}" in output
    assert "search attributes: added " + ", ".join(SEARCH_ATTRIBUTES) in output
    assert "schedule fx created: FactoryRun every 15m for acme/api, acme/web" in output
    assert "store janitor schedule created: StoreJanitor every 1h" in output
    assert _interval(bare_env.client, STORE_JANITOR_SCHEDULE) == timedelta(hours=1)
    assert set(SEARCH_ATTRIBUTES) <= set(_custom_attributes(bare_env.client))
    assert _interval(bare_env.client, "fx") == timedelta(minutes=15)

    # An upgrade runs it again with other values: nothing is added, the schedule follows the values.
    code, output = _setup("--factory-repo", "acme/api", "--factory-every", "1h", "--factory-id", "fx")
    assert code == 0, output
    assert "search attributes: all present" in output
    assert "schedule fx updated: FactoryRun every 1h for acme/api" in output
    assert "store janitor schedule updated: StoreJanitor every 1h" in output
    assert _interval(bare_env.client, "fx") == timedelta(hours=1)


def test_setup_without_repositories_touches_no_schedule(bare_env: WorkflowEnvironment, address: str) -> None:
    code, output = _setup("--no-search-attributes", "--no-store-janitor")
    assert code == 0, output
    assert "schedule" not in output and "search attributes" not in output


def test_bad_values_and_an_unreachable_temporal_are_one_line_errors(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _setup("--factory-repo", "not-a-repo")
    assert code == 2 and "bad factory settings" in output and "OWNER/REPO" in output
    code, output = _setup("--factory-repo", "acme/api", "--factory-every", "soon")
    assert code == 2 and "--every 'soon' is not a duration" in output
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    code, output = _setup("--wait-for-temporal", "0")
    assert code == 1 and "no Temporal server answered at 127.0.0.1:1" in output


async def test_where_temporal_refuses_to_add_attributes_the_tcld_commands_are_given() -> None:
    """Temporal Cloud answers AddSearchAttributes with a refusal; the command says how to add them there."""

    class Refusing:
        async def list_search_attributes(self, _: object) -> SimpleNamespace:
            return SimpleNamespace(custom_attributes={SEARCH_ATTRIBUTES[0]: 2})

        async def add_search_attributes(self, _: object) -> None:
            raise RPCError("request denied", RPCStatusCode.PERMISSION_DENIED, b"")

    client = SimpleNamespace(namespace="prod.acct", operator_service=Refusing())
    with pytest.raises(SetupError) as refused:
        await ensure_search_attributes(client)  # type: ignore[arg-type]
    flags = " ".join(f"--search-attribute '{name}=Keyword'" for name in SEARCH_ATTRIBUTES[1:])
    assert str(refused.value).endswith(f"tcld namespace search-attributes add --namespace prod.acct {flags}")

