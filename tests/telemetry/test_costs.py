"""The usage ledger (one JSON line per model call), its aggregation, and `spec2ship costs`."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from activities.agents.pricing import cost_usd
from activities.agents.registry import Price
from activities.telemetry.usage_log import GroupBy, UsageRecord, aggregate, append_usage, read_usage, usage_path
from contracts.agents import Attribution, Role, Usage
from workers.cli_costs import costs, parse_since

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def record(team: str, model: str, role: Role, tokens_in: int, tokens_out: int, usd: float,
           when: datetime = NOW, service: str = "api") -> UsageRecord:
    attribution = Attribution(team=team, service=service, spec="S-1", workflow_id="wf", role=role)
    return UsageRecord(timestamp=when, attribution=attribution, model=model, response_model=model, provider="openai",
                       input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=usd, duration_s=1.5)


def seed(data_dir: Path) -> None:
    for item in (
        record("payments", "gpt", Role.coder, 1000, 200, 0.01),
        record("payments", "claude", Role.reviewer, 500, 100, 0.02, service="ledger"),
        record("search", "gpt", Role.coder, 3000, 300, 0.05, when=NOW - timedelta(days=10)),
    ):
        append_usage(data_dir, item)


def test_price_is_per_million_tokens() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert cost_usd(Usage(input_tokens=1_000_000, output_tokens=0), price) == 3.0
    assert cost_usd(Usage(input_tokens=2000, output_tokens=1000), price) == pytest.approx(0.006 + 0.015)
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), Price()) == 0.0


def test_records_round_trip_filter_and_aggregate(tmp_path: Path) -> None:
    seed(tmp_path)
    everything = read_usage(tmp_path)
    assert len(everything) == 3
    recent = read_usage(tmp_path, since=datetime(2025, 3, 1))  # naive: taken as UTC
    assert {r.attribution.team for r in recent} == {"payments"}
    by_team = aggregate(everything, GroupBy.team)
    assert [(row.key, row.calls, row.input_tokens, row.output_tokens) for row in by_team] == [
        ("search", 1, 3000, 300), ("payments", 2, 1500, 300)]
    assert by_team[1].cost_usd == pytest.approx(0.03)
    assert [row.key for row in aggregate(everything, "role")] == ["coder", "reviewer"]
    assert {row.key for row in aggregate(everything, GroupBy.service)} == {"api", "ledger"}
    assert {row.key: row.calls for row in aggregate(everything, GroupBy.model)} == {"gpt": 2, "claude": 1}


def test_a_torn_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seed(tmp_path)
    with usage_path(tmp_path).open("a") as out:
        out.write('{"timestamp": "2025-03-10T12:00:00Z", "team": "pay')
    with caplog.at_level(logging.WARNING):
        records = read_usage(tmp_path)
    assert len(records) == 3
    assert "usage.jsonl:4: skipping an unreadable usage record" in caplog.text


def _append_many(args: tuple[str, int]) -> None:
    folder, worker = args
    for index in range(40):
        append_usage(Path(folder), record(f"team-{worker}", "m", Role.coder, index, index, 0.001))


def test_concurrent_writers_in_several_processes_all_land_whole(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=3) as pool:
        list(pool.map(_append_many, [(str(tmp_path), worker) for worker in range(3)]))
    lines = usage_path(tmp_path).read_text().splitlines()
    assert len(lines) == 120
    assert all(UsageRecord.model_validate_json(line) for line in lines)
    assert {row.key: row.calls for row in aggregate(read_usage(tmp_path), "team")} == {
        "team-0": 40, "team-1": 40, "team-2": 40}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("SPEC2SHIP_DATA_DIR", str(tmp_path))
    app = typer.Typer()
    app.command()(costs)
    return app


def test_costs_prints_a_table_per_team(cli: typer.Typer, tmp_path: Path) -> None:
    seed(tmp_path)
    result = CliRunner().invoke(cli, ["--by", "team"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "payments" in result.output and "search" in result.output
    assert "1,500" in result.output and "0.0300" in result.output
    assert "total" in result.output and "0.0800" in result.output


def test_costs_as_json_by_model_since_an_age(cli: typer.Typer, tmp_path: Path) -> None:
    append_usage(tmp_path, record("payments", "gpt", Role.coder, 10, 5, 0.5, when=datetime.now(UTC)))
    append_usage(tmp_path, record("payments", "old", Role.coder, 10, 5, 0.5, when=datetime.now(UTC) - timedelta(
        days=30)))
    result = CliRunner().invoke(cli, ["--by", "model", "--since", "7d", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"key": "gpt", "calls": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5}]


def test_costs_with_no_records_says_where_it_looked(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0
    assert "No model calls recorded" in result.output


def test_a_bad_since_is_a_usage_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["--since", "last tuesday"])
    assert result.exit_code == 2
    assert "'last tuesday' is not a date" in result.output


def test_a_bad_group_is_a_usage_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["--by", "planet"])
    assert result.exit_code == 2


def test_since_accepts_dates_timestamps_and_ages() -> None:
    assert parse_since("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T09:30:00+02:00") == datetime(2025, 1, 31, 7, 30, tzinfo=UTC)
    assert parse_since("12h", now=NOW) == NOW - timedelta(hours=12)
    assert parse_since("30m", now=NOW) == NOW - timedelta(minutes=30)


def test_lines_written_before_records_nested_their_attribution_still_read(tmp_path: Path) -> None:
    path = usage_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"timestamp": "2025-03-10T12:00:00Z", "team": "payments", "service": "api", "spec": "S-1", '
                    '"workflow_id": "wf", "role": "coder", "kind": "feature", "model": "gpt", "provider": "openai", '
                    '"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5}\n')
    [old] = read_usage(tmp_path)
    assert (old.attribution.team, old.attribution.role, old.model) == ("payments", Role.coder, "gpt")
    assert [(row.key, row.cost_usd) for row in aggregate([old], GroupBy.service)] == [("api", 0.5)]
