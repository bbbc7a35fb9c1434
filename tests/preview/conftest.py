"""Fixtures of the preview tests: a real git repository holding a tiny app, and process checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from preview_fixtures import AppRepo, Processes, make_app_repo


@pytest.fixture
def app_repo(tmp_path: Path) -> AppRepo:
    return make_app_repo(tmp_path)


@pytest.fixture
def procs() -> Processes:
    return Processes()
