"""The cost ledger of model calls: one JSON line per call under `<data_dir>/usage/usage.jsonl`.

Metrics answer "how much, roughly, lately"; this file answers "what did team X spend since Monday"
exactly, with no collector running. Writers in several processes append under a file lock so no
line is ever interleaved with another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError, model_validator

from contracts.agents import Attribution, ModelRequest, ModelTurn

log = logging.getLogger(__name__)

USAGE_FILE = Path("usage") / "usage.jsonl"


class GroupBy(StrEnum):
    team = "team"
    service = "service"
    model = "model"
    role = "role"


_ATTRIBUTION_FIELDS = ("team", "service", "spec", "workflow_id", "role", "kind")


class UsageRecord(BaseModel):
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attribution: Attribution
    model: str = Field(description="The registry model name the call asked for.")
    response_model: str = Field(default="", description="The model name the provider answered with.")
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _flat_lines(cls, data: Any) -> Any:
        """Lines written before records nested their attribution carry its fields at the top."""
        if isinstance(data, dict) and "attribution" not in data and "team" in data:
            data = dict(data)
            data["attribution"] = {key: data.pop(key) for key in _ATTRIBUTION_FIELDS if key in data}
        return data

    def key(self, by: GroupBy) -> str:
        return self.model if by is GroupBy.model else str(getattr(self.attribution, by.value))

    @classmethod
    def from_turn(cls, request: ModelRequest, turn: ModelTurn) -> UsageRecord:
        return cls(
            attribution=request.attribution, model=request.model, response_model=turn.model, provider=turn.provider,
            input_tokens=turn.usage.input_tokens, output_tokens=turn.usage.output_tokens,
            cost_usd=turn.cost_usd, duration_s=turn.duration_s,
        )


class UsageRow(BaseModel):
    key: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


def usage_path(data_dir: Path) -> Path:
    return data_dir / USAGE_FILE


def append_usage(data_dir: Path, record: UsageRecord) -> Path:
    path = usage_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = record.model_dump_json() + "\n"
    with FileLock(str(path) + ".lock"), path.open("a", encoding="utf-8") as out:
        out.write(line)
    return path


def read_usage(data_dir: Path, since: datetime | None = None) -> list[UsageRecord]:
    """All records at or after `since` (naive datetimes are taken as UTC).

    A line that does not parse (a writer killed mid-line) is skipped with a warning naming it, so one
    torn line cannot hide every other cost.
    """
    path = usage_path(data_dir)
    if not path.exists():
        return []
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    records: list[UsageRecord] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = UsageRecord.model_validate_json(line)
            except ValidationError as err:
                log.warning("%s:%d: skipping an unreadable usage record: %s", path, number,
                            err.errors()[0]["msg"])
                continue
            if since is None or record.timestamp >= since:
                records.append(record)
    return records


def aggregate(records: Iterable[UsageRecord], by: GroupBy | str) -> list[UsageRow]:
    """Totals per team, service, model or role, most expensive first."""
    group = GroupBy(by)
    rows: dict[str, UsageRow] = {}
    for record in records:
        key = record.key(group)
        row = rows.setdefault(key, UsageRow(key=key))
        row.calls += 1
        row.input_tokens += record.input_tokens
        row.output_tokens += record.output_tokens
        row.cost_usd = round(row.cost_usd + record.cost_usd, 8)
    return sorted(rows.values(), key=lambda row: (-row.cost_usd, row.key))
