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
    limit = int(os.environ.get("SPEC2SHIP_FAULT_CONCURRENCY", "0")) or len(selected) or 1
    cases = FaultCases(selected, tmp_path_factory, limit)
    _RAN.append(cases)
    try:
        yield cases
    finally:
        await cases.close()


_RAN: list[FaultCases] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long each fault case ran (its own wall time, while the others ran beside it)."""
    for cases in _RAN:
        terminalreporter.section("fault cases")
        for name, seconds in sorted(cases.seconds.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:6.0f} s  {name}")
