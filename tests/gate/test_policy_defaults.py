"""The platform's policy defaults (SPEC2SHIP_POLICY_DEFAULTS) under each repository's own policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.forge.activities import ForgeActivities
from contracts.forge import ForgeKind, LoadSpecInput, RepoRef, SpecSource
from contracts.gate import AutonomyLevel
from rules.policy import PolicyError, parse_policy
from workers.sample.repo import build_sample

DEFAULTS = """\
default_autonomy: L2
escalation: {owners: [platform-oncall], expire_after: 3d}
protected: {add: ['deploy/**']}
"""


def test_the_repository_s_file_is_laid_over_the_defaults_key_by_key() -> None:
    policy = parse_policy("escalation: {owners: [shop-team]}\nservices: {shop: {autonomy: L4}}\n", DEFAULTS)
    assert policy.default_autonomy is AutonomyLevel.L2  # from the defaults
    assert policy.escalation.owners == ["shop-team"]  # the repository's list replaces the default's
    assert policy.escalation.expire_after.days == 3  # a sibling key of the same mapping is kept
    assert policy.protected.add == ["deploy/**"]
    assert policy.level_for("shop") is AutonomyLevel.L4


def test_without_a_repository_policy_the_defaults_apply_and_without_either_the_built_in_ones() -> None:
    assert parse_policy(None, DEFAULTS).default_autonomy is AutonomyLevel.L2
    assert parse_policy(None, None) == parse_policy("")


@pytest.mark.parametrize(("repo", "defaults", "named"), [
    ("default_autonomy: L2\n", "default_autonomy: L9\n", "platform.yaml: default_autonomy"),
    ("default_autonomy: L9\n", DEFAULTS, ".spec2ship/policy.yaml: default_autonomy"),
    (None, "escalation: {expire_after: soon}\n", "platform.yaml: escalation.expire_after"),
    (None, "- a list\n", "platform.yaml: expected a mapping"),
])
def test_a_mistake_is_named_in_the_file_it_is_in(repo: str | None, defaults: str, named: str) -> None:
    with pytest.raises(PolicyError, match=named.replace(".", r"\.")):
        parse_policy(repo, defaults, defaults_name="platform.yaml")


def test_load_spec_reads_the_defaults_the_worker_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = build_sample(tmp_path)
    defaults = tmp_path / "policy-defaults.yaml"
    defaults.write_text("protected: {add: ['deploy/**']}\nescalation: {owners: [platform-oncall]}\n")
    monkeypatch.setenv("SPEC2SHIP_POLICY_DEFAULTS", str(defaults))
    loaded = ActivityEnvironment().run(ForgeActivities().load_spec, LoadSpecInput(
        repo=RepoRef(kind=ForgeKind.local, location=str(paths["repo"])),
        source=SpecSource(kind="inline", text=paths["greet-by-name.md"].read_text(), path="greet-by-name.md")))
    assert loaded.policy.protected.add == ["deploy/**"]
    assert loaded.policy.level_for("greeter") is AutonomyLevel.L5  # the sample repository's own file still rules
    assert loaded.policy_ref is not None and loaded.policy_ref.defaults == "policy-defaults.yaml"
    assert "over the platform's defaults (`policy-defaults.yaml`)" in loaded.policy_ref.describe()
