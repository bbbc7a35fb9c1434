"""The spool (what is on disk, in what order, for how long) and the drain (order, retries, faults), with the
app's doubles for Temporal and GitHub; `spec2ship webhook spool` reads what they leave."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner
from webhook_doubles import FakeRuns, MakeWebhook, Webhook, comment_payload, issue_payload

from activities.forge.base import ForgeError
from contracts.forge import ForgeKind, RepoRef
from contracts.runs import SpecToShipInput
from workers.cli_webhook import webhook_app
from workers.webhook.jobs import Disposition, Outcome, PostReply, Reply
from workers.webhook.settings import DrainSettings, settings_problem
from workers.webhook.spool import Done, Entry, Retry, Spool, SpoolBusy, SpoolReader

RUN_7 = "spec2ship/octo/shop/issues/7"


def _reply(n: int) -> PostReply:
    return PostReply(reply=Reply(repo=RepoRef(kind=ForgeKind.github, location="octo/shop"), issue_number=n, body="hi"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- the spool -------------------------------------------------------------------------------------------


async def test_a_delivery_is_spooled_once_and_is_still_there_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool.open(path)
    assert await spool.append(Entry(key="d-1", event="issues", job=_reply(1)))
    assert not await spool.append(Entry(key="d-1", event="issues", job=_reply(2)))  # the same delivery id
    spool.close()
    again = Spool.open(path)
    try:
        [due] = await again.due(limit=10)
        assert (due.key, due.job) == ("d-1", _reply(1))  # type: ignore[union-attr]
    finally:
        again.close()


async def test_deliveries_arriving_together_share_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: while one transaction is written, the next deliveries wait for it and go in one more."""
    spool = Spool.open(tmp_path / "spool.sqlite3")
    transactions = 0
    original = spool._transaction

    def counted(connection: sqlite3.Connection, changes: Any) -> list[Any]:
        nonlocal transactions
        transactions += 1
        return original(connection, changes)

    monkeypatch.setattr(spool, "_transaction", counted)
    try:
        results = await asyncio.gather(*(spool.append(Entry(key=f"d-{n}", event="issues", job=_reply(n + 1)))
                                         for n in range(200)))
        assert results == [True] * 200
        assert (await spool.stats()).pending == 200
        assert transactions < 20
    finally:
        spool.close()


async def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool.sqlite3")
    try:
        with pytest.raises(SpoolBusy, match="give each replica its own"):
            Spool.open(tmp_path / "spool.sqlite3")
    finally:
        spool.close()
    Spool.open(tmp_path / "spool.sqlite3").close()  # free again once closed


async def test_outcomes_retries_follow_ups_and_pruning(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool.open(tmp_path / "spool.sqlite3", clock=clock)
    try:
        for n in (1, 2, 3):
            await spool.append(Entry(key=f"d-{n}", event="issues", job=_reply(n), received_at=clock.now))
        assert [d.key for d in await spool.due(limit=10)] == ["d-1", "d-2", "d-3"]  # the order they arrived

        outcome = Outcome(disposition=Disposition.refused, reason="no", replies=[])
        follow_up = Entry(key="d-1/reply/0", event="issues", job=_reply(9), received_at=clock.now)
        await spool.finish(Done(key="d-1", outcome=outcome, follow_ups=[follow_up]))
        await spool.finish(Retry(key="d-2", error="GitHub said wait", next_at=clock.now + 60))
        assert [d.key for d in await spool.due(limit=10)] == ["d-3", "d-1/reply/0"]

        stats = await spool.stats()
        assert (stats.pending, stats.done, stats.last_error, stats.last_error_key) == (3, 1, "GitHub said wait", "d-2")
        assert stats.oldest_pending_age_s(clock.now + 5) == 5

        clock.now += 61
        assert "d-2" in [d.key for d in await spool.due(limit=10)]
        row = await spool.row("d-2")
        assert row is not None and (row.attempts, row.state) == (1, "pending")

        clock.now += 3 * 86400
        assert await spool.prune(keep_s=86400) == 1  # d-1 is forgotten; nothing pending ever is
        assert await spool.row("d-1") is None and await spool.row("d-2") is not None
    finally:
        spool.close()


async def test_a_spooled_job_this_version_cannot_read_is_dropped_with_a_reason(make_webhook: MakeWebhook,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    Spool.open(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO deliveries (key, event, job, received_at, next_at) VALUES (?, ?, ?, 1, 1)",
                           ("d-old", "issues", json.dumps({"job": {"kind": "teleport"}})))
    webhook = make_webhook(spool=path)
    webhook.settle()
    row = webhook.row("d-old")
    assert row is not None and row.state == "done" and row.outcome is not None
    assert row.outcome.disposition is Disposition.ignored
    assert "cannot read the spooled job" in row.outcome.reason


def test_a_spool_that_cannot_be_written_is_answered_503_and_not_ready(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one 5xx: the delivery was not recorded, so GitHub must show it failed (it can be redelivered)."""

    def full(connection: sqlite3.Connection, changes: Any) -> list[Any]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(webhook.spool, "_transaction", full)
    response = webhook.deliver("issues", issue_payload())
    assert response.status_code == 503
    assert webhook.client.get("/readyz").status_code == 503
    assert webhook.runs.calls == []


# --- the drain ---------------------------------------------------------------------------------------------


def test_what_an_earlier_process_left_is_drained_at_start(make_webhook: MakeWebhook, tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    first = make_webhook(spool=path)
    first.runs.down = True
    assert first.deliver("issues", issue_payload(), delivery="d-1").answer["status"] == "queued"
    first.close()  # stops with the delivery still pending
    second = make_webhook(spool=path)
    second.settle_until(lambda: second.runs.calls != [])  # no delivery needed: the drain starts with the app
    [call] = second.runs.calls
    assert (call.kind, call.workflow_id) == ("start", RUN_7)


def test_a_runs_deliveries_are_carried_out_in_the_order_they_arrived(webhook: Webhook) -> None:
    """Even when the first waits out a back-off and the later ones are due: they wait behind it."""
    webhook.runs.down = True
    webhook.deliver("issues", issue_payload(), delivery="label")
    webhook.deliver("issue_comment", comment_payload("/spec2ship approve ok"), delivery="approve")
    webhook.deliver("issues", issue_payload("edited", changes={"body": {}}), delivery="edit")
    webhook.deliver("issues", issue_payload(number=8), delivery="label-8")  # another run: not held back
    tried = {row.key: row.attempts for row in _pending(webhook)}
    assert list(tried) == ["label", "approve", "edit", "label-8"]
    assert tried["label"] >= 1
    assert tried["approve"] == tried["edit"] == 0  # never tried before the start they follow
    webhook.runs.down = False
    webhook.settle_until(lambda: len(webhook.runs.calls) == 4)
    runs_7 = [call.kind for call in webhook.runs.calls if call.workflow_id == RUN_7]
    assert runs_7 == ["start", "update", "signal"]


def _pending(webhook: Webhook) -> list[Any]:
    with SpoolReader(webhook.settings.spool_path) as reader:
        return reader.rows(pending_only=True, limit=10)


def test_a_github_rate_limit_delays_only_that_delivery_by_githubs_wait(webhook: Webhook) -> None:
    checks = 0
    forge = webhook.github.forge

    def limited(repo: RepoRef) -> Any:
        made = forge(repo)

        def permission(user: str) -> str:
            nonlocal checks
            checks += 1
            if checks == 1:
                raise ForgeError("GitHub rate limit (403): retry after 120 s", retryable=True, retry_after_s=120)
            return made.permission(user)

        made.permission = permission  # type: ignore[method-assign]
        return made

    webhook.client.app.state.drain._execute._forges = limited  # type: ignore[attr-defined]
    webhook.deliver("issue_comment", comment_payload("/spec2ship approve ok"), delivery="approve")
    assert webhook.deliver("issues", issue_payload(number=8), delivery="label-8").status == "acted"
    row = webhook.row("approve")
    assert row is not None and row.state == "pending" and row.attempted_at is not None
    assert row.next_at >= row.attempted_at + 119  # GitHub's 120 s, counted from just before the attempt ended
    assert "rate limit" in (row.last_error or "")
    assert [call.kind for call in webhook.runs.calls] == ["start"]


class FaultyRuns(FakeRuns):
    """Starting issue 7's run fails with a bug of ours (not a Temporal error) once."""

    def __init__(self) -> None:
        super().__init__()
        self.faults = 1

    async def start(self, workflow_id: str, run_input: SpecToShipInput, task_queue: str) -> str:
        if workflow_id == RUN_7 and self.faults:
            self.faults -= 1
            raise KeyError("a bug")
        return await super().start(workflow_id, run_input, task_queue)


def test_a_fault_in_carrying_out_one_delivery_is_logged_kept_and_retried(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    runs = FaultyRuns()

    async def provider() -> FaultyRuns:
        return runs

    webhook.client.app.state.drain._execute._runs = provider  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="spec2ship.webhook"):
        webhook.deliver("issues", issue_payload(), delivery="d-7")
        webhook.deliver("issues", issue_payload(number=8), delivery="d-8")
    assert [call.workflow_id for call in runs.calls] == ["spec2ship/octo/shop/issues/8"]
    [record] = caplog.records
    assert record.exc_info is not None and "tried again" in record.getMessage()
    row = webhook.row("d-7")
    assert row is not None and row.state == "pending" and "KeyError" in (row.last_error or "")
    webhook.settle_until(lambda: len(runs.calls) == 2)


# --- what operators see ------------------------------------------------------------------------------------


def test_the_spool_command_says_what_waits_and_why(webhook: Webhook) -> None:
    webhook.runs.down = True
    webhook.deliver("issues", issue_payload(), delivery="d-1")
    webhook.deliver("issues", issue_payload(number=8), delivery="d-2")
    path = str(webhook.settings.spool_path)

    result = CliRunner().invoke(webhook_app, ["spool", "--path", path])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"spool {webhook.settings.spool_path.resolve()}"
    assert lines[1].startswith("waiting: 2 deliveries, the oldest for ")
    assert "connection refused" in lines[3]
    assert [line.split()[0] for line in lines[4:]] == ["d-1", "d-2"]

    report = json.loads(CliRunner().invoke(webhook_app, ["spool", "--path", path, "--json"]).output)
    assert (report["pending"], [row["key"] for row in report["waiting"]]) == (2, ["d-1", "d-2"])
    assert report["oldest_pending_s"] >= 0 and "connection refused" in report["last_error"]
    with SpoolReader(Path(path)) as reader:
        assert reader.stats().pending == 2


def test_the_spool_command_without_a_spool_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(webhook_app, ["spool", "--path", str(tmp_path / "none.sqlite3")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "no spool at" in result.output


async def test_with_the_roles_in_two_processes_only_the_drain_checkpoints_and_only_the_ingress_fsyncs_each_commit(
    tmp_path: Path,
) -> None:
    """The ingress answers GitHub after its commit, so it fsyncs it and never pays for a checkpoint; the
    drain's outcomes may be lost to a power cut (the delivery is carried out again, safely), so it does not
    fsync each one, and it checkpoints the shared WAL (someone must, or the file grows without end)."""
    ingress = Spool.open(tmp_path / "spool.sqlite3", roles=("ingress",))
    drain = Spool.open(tmp_path / "spool.sqlite3", roles=("drain",))
    together = Spool.open(tmp_path / "other.sqlite3")
    try:
        def pragmas(spool: Spool) -> tuple[int, int]:
            connection = spool._writer.connection
            return (connection.execute("PRAGMA synchronous").fetchone()[0],
                    connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        full, normal = 2, 1
        assert pragmas(ingress) == (full, 0)
        assert pragmas(drain) == (normal, 1000)
        assert pragmas(together) == (full, 1000)
        assert await ingress.append(Entry(key="d-1", event="issues", job=_reply(1)))
        [due] = await drain.due(limit=10)
        assert due.key == "d-1"
    finally:
        for spool in (ingress, drain, together):
            spool.close()


def test_the_drain_settings_come_from_the_environment_and_a_bad_one_is_named(tmp_path: Path) -> None:
    env = {"SPEC2SHIP_WEBHOOK_SPOOL": str(tmp_path / "s.sqlite3"), "SPEC2SHIP_WEBHOOK_DRAIN_CONCURRENCY": "12"}
    settings = DrainSettings.drain_from_env(env)
    assert (settings.spool_path, settings.drain_concurrency) == (tmp_path / "s.sqlite3", 12)
    assert DrainSettings.drain_from_env({}).drain_concurrency == 4
    with pytest.raises(ValidationError) as bad:
        DrainSettings.drain_from_env({"SPEC2SHIP_WEBHOOK_DRAIN_CONCURRENCY": "0"})
    assert settings_problem(bad.value).startswith("SPEC2SHIP_WEBHOOK_DRAIN_CONCURRENCY: ")
