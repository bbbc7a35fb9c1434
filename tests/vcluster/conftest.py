"""Fixtures of the vCluster preview tests: a fake host and virtual cluster with a controller double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vcluster_world import KubeWorld


@pytest.fixture(params=["argocd", "flux"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KubeWorld]:
    started = KubeWorld(controller=request.param, root=tmp_path).start()
    yield started
    started.stop()


@pytest.fixture
def argo_world(tmp_path: Path) -> Iterator[KubeWorld]:
    started = KubeWorld(controller="argocd", root=tmp_path).start()
    yield started
    started.stop()
