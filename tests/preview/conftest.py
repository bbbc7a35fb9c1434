"""Fixtures of the preview tests: a real git repository holding a tiny app, and process checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from preview_fixtures import MODES, AppRepo, Processes, make_app_repo


@pytest.fixture
def app_repo(tmp_path: Path) -> AppRepo:
    return make_app_repo(tmp_path)


@pytest.fixture
def procs() -> Processes:
    return Processes()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """SPEC2SHIP_SANDBOX for one test: `bubblewrap` (skipped with the reason where it cannot run) and `none`."""
    value: str = request.param
    return value
