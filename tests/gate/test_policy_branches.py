"""`delete_branches` in `.spec2ship/policy.yaml`: on unless a repository turns it off, and a clear error
for a value that is not yes or no."""

from __future__ import annotations

import pytest

from rules.policy import PolicyError, parse_policy


def test_branches_are_deleted_unless_the_policy_says_otherwise() -> None:
    assert parse_policy(None).delete_branches is True
    assert parse_policy("default_autonomy: L4\n").delete_branches is True
    assert parse_policy("delete_branches: false\n").delete_branches is False


def test_a_value_that_is_not_a_yes_or_no_is_named() -> None:
    with pytest.raises(PolicyError, match=r"\.spec2ship/policy\.yaml: delete_branches: "):
        parse_policy("delete_branches: sometimes\n")
