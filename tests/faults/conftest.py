"""The fault cases start together; see fault_cases.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fault_cases import Case, FaultCases


@pytest_asyncio.fixture(scope="session")
async def fault_cases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                      ) -> AsyncIterator[FaultCases]:
    """Starts the case of every selected test that takes `fault_cases` and is parametrized by `case`; the
    case is `CASES[case]` of the test's module."""
    selected: dict[str, Case] = {}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if "fault_cases" in getattr(item, "fixturenames", ()) and callspec is not None and "case" in callspec.params:
            name = callspec.params["case"]
            selected[name] = item.module.CASES[name]  # type: ignore[attr-defined]
    cases = FaultCases(selected, tmp_path_factory, int(os.environ.get("SPEC2SHIP_FAULT_CONCURRENCY", "8")))
    try:
        yield cases
    finally:
        await cases.close()
