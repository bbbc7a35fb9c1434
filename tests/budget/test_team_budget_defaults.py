"""The org default a team starts with before anyone configures its budget."""

from __future__ import annotations

import pytest

from activities.budget.activities import initial_state
from activities.config import DEFAULT_TEAM_TOKENS, default_team_tokens, default_team_usd


def test_unconfigured_team_gets_two_million_tokens_a_month_and_no_dollar_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPEC2SHIP_DEFAULT_TEAM_TOKENS", raising=False)
    monkeypatch.delenv("SPEC2SHIP_DEFAULT_TEAM_USD", raising=False)
    state = initial_state("platform")
    assert DEFAULT_TEAM_TOKENS == 2_000_000
    assert (state.team, state.limits.tokens, state.limits.usd, state.period.value) == (
        "platform", 2_000_000, None, "month"
    )


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "500_000")
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_TEAM_USD", "12.5")
    assert (default_team_tokens(), default_team_usd()) == (500_000, 12.5)
    monkeypatch.setenv("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "none")
    assert default_team_tokens() is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "-5", "not a whole number"),
        ("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "lots", "not a whole number"),
        ("SPEC2SHIP_DEFAULT_TEAM_USD", "-1", "negative"),
        ("SPEC2SHIP_DEFAULT_TEAM_USD", "ten", "not a number of dollars"),
    ],
)
def test_bad_defaults_are_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        default_team_tokens() if name.endswith("TOKENS") else default_team_usd()
