"""Fixtures of the local forge tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from local_git_repo import isolate_git


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No global git config, and a private temp folder, returned, so leftovers of a merge can be seen."""
    isolate_git(monkeypatch, tmp_path)
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
