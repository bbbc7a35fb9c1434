"""Tables stay readable at 80 columns: rendered at 80 they take as many lines as at 200 (nothing wraps)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from activities.telemetry.usage_log import UsageRecord, append_usage
from contracts.agents import Attribution, Role
from contracts.budget import BudgetLimits, BudgetPeriod, BudgetView, Spend
from workers.cli import app
from workers.cli_budget import _render


def _lines(width: int, draw: object) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with console
    draw(console)  # type: ignore[operator]
    return console.export_text().splitlines()


def test_the_budget_table_fits_80_columns() -> None:
    view = BudgetView(team="payments-platform", period=BudgetPeriod.month,
                      period_start=datetime(2026, 12, 1, tzinfo=UTC), period_end=datetime(2027, 1, 1, tzinfo=UTC),
                      limits=BudgetLimits(tokens=2_000_000, usd=150.0), used=Spend(tokens=1_234_567, usd=98.76),
                      reserved=Spend(tokens=300_000, usd=0.0), free_tokens=465_433, free_usd=51.24,
                      open_reservations=12)
    narrow, wide = _lines(80, lambda c: _render([view], c)), _lines(200, lambda c: _render([view], c))
    assert len(narrow) == len(wide), "\n".join(narrow)
    assert max(len(line) for line in narrow) <= 80


@pytest.mark.parametrize("by", ["team", "service", "model", "role"])
def test_the_costs_table_fits_80_columns(tmp_path: Path, by: str) -> None:
    for team, model in (("payments-platform", "claude-sonnet-4-5"), ("search", "gpt-4.1")):
        append_usage(tmp_path, UsageRecord(
            attribution=Attribution(team=team, service=f"{team}-api", spec="S", workflow_id="w", role=Role.reviewer),
            model=model, provider="openai", input_tokens=1_234_567, output_tokens=234_567, cost_usd=123.4567))
    runner = CliRunner()
    narrow = runner.invoke(app, ["costs", "--by", by, "--data-dir", str(tmp_path)], env={"COLUMNS": "80"})
    wide = runner.invoke(app, ["costs", "--by", by, "--data-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert narrow.exit_code == 0, narrow.output
    assert len(narrow.output.splitlines()) == len(wide.output.splitlines()), narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 80
