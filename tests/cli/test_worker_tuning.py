"""The worker's cache and concurrency come from the environment, with the SDK's defaults when unset."""

from __future__ import annotations

import pytest

from activities.config import ConfigError, WorkerTuning, worker_tuning


def test_unset_is_temporal_s_defaults_and_each_variable_sets_its_own_figure() -> None:
    assert worker_tuning({}) == WorkerTuning(workflow_cache=1000, workflow_tasks=100, activities=100)
    tuned = worker_tuning({"SPEC2SHIP_WORKFLOW_CACHE": "0", "SPEC2SHIP_MAX_WORKFLOW_TASKS": "8",
                           "SPEC2SHIP_MAX_ACTIVITIES": "2_000"})
    assert tuned == WorkerTuning(workflow_cache=0, workflow_tasks=8, activities=2000)


@pytest.mark.parametrize(("variable", "value"), [("SPEC2SHIP_WORKFLOW_CACHE", "-1"),
                                                  ("SPEC2SHIP_MAX_WORKFLOW_TASKS", "0"),
                                                  ("SPEC2SHIP_MAX_ACTIVITIES", "ten")])
def test_a_value_it_cannot_use_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}='{value}'"):
        worker_tuning({variable: value})
