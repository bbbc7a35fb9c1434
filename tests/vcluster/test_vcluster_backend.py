"""The vCluster backend end to end against the fake host and virtual clusters and the controller double."""

from __future__ import annotations

from vcluster_world import KubeWorld

from activities.evidence.models import CheckStatus


async def test_vcluster_run_brings_up_probes_and_tears_down(world: KubeWorld) -> None:
    beats: list[str] = []
    evidence = await world.backend().run(world.request(), beats.append)
    assert evidence.start_error is None, evidence.start_error
    assert evidence.ready
    [result] = evidence.results
    assert result.status is CheckStatus.passed, result.summary
    assert world.preview_objects() == []
    assert evidence.leftovers == []
