"""The webhook's spool: every accepted delivery is on disk before GitHub hears 2xx, until the drain is done.

SQLite in WAL mode with `synchronous=FULL`: a commit returns once the write-ahead log is fsync'd, so a
delivery answered 202 survives a crash of the process or the machine. Commits are grouped: deliveries
that arrive while one commit is being written wait for the next, which writes them all with one fsync,
so the cost of durability stays one or two fsyncs per delivery at any rate instead of growing a queue.

The delivery id is the key: a delivery GitHub sends again (a redelivery, a retry) is recognised and
not spooled twice for as long as the spool keeps finished deliveries (`keep_s`, three days by default:
how far back GitHub lets people redeliver). Workflow ids remain the idempotency key beyond that.

A spool has two roles, each held by one process at a time (a lock file beside it): the ingress that
appends deliveries and the drain that carries them out, in one process or two (`spec2ship webhook
serve` runs the drain as a child process, so that its CPU never delays an answer). Several webhook
replicas each need a spool of their own.

SQLite calls run on two threads the spool owns, each with its connection: one writes (deliveries,
outcomes), one reads (what is due, figures), so that a delivery being answered never waits behind the
drain's reading (WAL lets them run at once). The event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field, ValidationError

from workers.webhook.jobs import Job, Outcome, SpooledJob, target

T = TypeVar("T")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    event        TEXT NOT NULL,
    target       TEXT,
    job          TEXT NOT NULL,
    received_at  REAL NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    attempted_at REAL,
    last_error   TEXT,
    finished_at  REAL,
    outcome      TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (target, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (finished_at) WHERE state = 'done';
CREATE INDEX IF NOT EXISTS deliveries_errors ON deliveries (attempted_at) WHERE last_error IS NOT NULL;
"""
ERROR_LIMIT = 2000  # characters of an error kept per delivery
BUSY_S = 5.0  # how long a writer waits for the other process's transaction before giving up
BUSY_POLL_S = 0.0002

# Due, and first in its run's queue: a delivery waits behind an earlier one for the same run (`target`, the
# workflow id) even when the earlier one waits out a back-off, so one run's deliveries keep their order.
_DUE = ("FROM deliveries AS d WHERE d.state = 'pending' AND d.next_at <= ? AND (d.target IS NULL OR NOT EXISTS "
        "(SELECT 1 FROM deliveries AS e WHERE e.state = 'pending' AND e.target = d.target AND e.seq < d.seq))")


class SpoolError(OSError):
    """The spool could not be read or written (disk full, file removed, corrupt); the message says which."""


class SpoolBusy(SpoolError):
    """Another process holds this role of the spool; each webhook replica needs a spool of its own."""


Role = Literal["ingress", "drain"]
BOTH: tuple[Role, ...] = ("ingress", "drain")


class Entry(BaseModel):
    """A delivery to spool: its key (the delivery id, or one derived from it for a follow-up reply)."""

    key: str = Field(min_length=1)
    event: str
    job: Job
    received_at: float = Field(default_factory=time.time)


class Pending(BaseModel):
    """A spooled delivery the drain has still to carry out."""

    seq: int
    key: str
    event: str
    job: Job
    attempts: int
    received_at: float


class Unreadable(BaseModel):
    """A spooled row whose job this version cannot read (written by another version); never retried."""

    seq: int
    key: str
    error: str


class Done(BaseModel):
    key: str
    outcome: Outcome
    follow_ups: list[Entry] = Field(default_factory=list, description="Replies the outcome asked for.")


class Retry(BaseModel):
    key: str
    error: str
    next_at: float


class Row(BaseModel):
    """One delivery as the spool holds it (for operators and tests)."""

    seq: int
    key: str
    event: str
    state: str
    attempts: int
    received_at: float
    next_at: float
    attempted_at: float | None
    last_error: str | None
    finished_at: float | None
    outcome: Outcome | None


class Stats(BaseModel):
    """What an operator asks of a spool: how much is waiting, for how long, and why."""

    path: str
    pending: int
    oldest_pending_at: float | None = None
    done: int
    last_error: str | None = None
    last_error_at: float | None = None
    last_error_key: str | None = None

    def oldest_pending_age_s(self, now: float | None = None) -> float | None:
        if self.oldest_pending_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.oldest_pending_at)


# --- SQL, on a connection: the spool's thread, or the read-only CLI ----------------------------------


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL and fsync on every commit."""
    if not create and not path.exists():
        raise SpoolError(f"no spool at {path}")
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_S)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SpoolError(f"the spool {path} was written by a newer spec2ship (schema {version}); "
                             "run that version, or drain and move the file away")
        if create:
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.Error as error:
        raise SpoolError(f"cannot open the spool {path}: {error}") from None
    return connection


def stats(connection: sqlite3.Connection, path: Path) -> Stats:
    pending, oldest = connection.execute(
        "SELECT count(*), min(received_at) FROM deliveries WHERE state = 'pending'").fetchone()
    done = connection.execute("SELECT count(*) FROM deliveries WHERE state = 'done'").fetchone()[0]
    error = connection.execute(
        "SELECT key, last_error, attempted_at FROM deliveries WHERE last_error IS NOT NULL "
        "ORDER BY attempted_at DESC LIMIT 1").fetchone()
    return Stats(path=str(path), pending=pending, oldest_pending_at=oldest, done=done,
                 last_error_key=error[0] if error else None, last_error=error[1] if error else None,
                 last_error_at=error[2] if error else None)


_ROW = ("SELECT seq, key, event, state, attempts, received_at, next_at, attempted_at, last_error, finished_at, "
        "outcome FROM deliveries")


def _row(values: tuple[Any, ...]) -> Row:
    seq, key, event, state, attempts, received_at, next_at, attempted_at, last_error, finished_at, outcome = values
    return Row(seq=seq, key=key, event=event, state=state, attempts=attempts, received_at=received_at,
               next_at=next_at, attempted_at=attempted_at, last_error=last_error, finished_at=finished_at,
               outcome=Outcome.model_validate_json(outcome) if outcome else None)


def rows(connection: sqlite3.Connection, *, pending_only: bool, limit: int) -> list[Row]:
    """The oldest pending deliveries, or the most recent of all."""
    if pending_only:
        query = f"{_ROW} WHERE state = 'pending' ORDER BY seq LIMIT ?"
    else:
        query = f"{_ROW} ORDER BY seq DESC LIMIT ?"
    return [_row(values) for values in connection.execute(query, (limit,))]


def row(connection: sqlite3.Connection, key: str) -> Row | None:
    found = connection.execute(f"{_ROW} WHERE key = ?", (key,)).fetchone()
    return _row(found) if found else None


def _insert(connection: sqlite3.Connection, entry: Entry) -> bool:
    cursor = connection.execute(
        "INSERT OR IGNORE INTO deliveries (key, event, target, job, received_at, next_at) VALUES (?, ?, ?, ?, ?, ?)",
        (entry.key, entry.event, target(entry.job), SpooledJob(job=entry.job).model_dump_json(), entry.received_at,
         entry.received_at))
    return cursor.rowcount == 1


def _finish(connection: sqlite3.Connection, result: Done | Retry, now: float) -> None:
    if isinstance(result, Done):
        connection.execute(
            "UPDATE deliveries SET state = 'done', attempts = attempts + 1, attempted_at = ?, finished_at = ?, "
            "outcome = ? WHERE key = ? AND state = 'pending'",
            (now, now, result.outcome.model_dump_json(exclude={"replies"}), result.key))
        for entry in result.follow_ups:
            _insert(connection, entry)
    else:
        connection.execute(
            "UPDATE deliveries SET attempts = attempts + 1, attempted_at = ?, next_at = ?, last_error = ? "
            "WHERE key = ? AND state = 'pending'", (now, result.next_at, result.error[:ERROR_LIMIT], result.key))


def _due(connection: sqlite3.Connection, now: float, limit: int, skip: Collection[int]) -> list[Pending | Unreadable]:
    found: list[Pending | Unreadable] = []
    skipped = f" AND d.seq NOT IN ({', '.join('?' * len(skip))})" if skip else ""
    for seq, key, event, job, attempts, received_at in connection.execute(
        f"SELECT d.seq, d.key, d.event, d.job, d.attempts, d.received_at {_DUE}{skipped} ORDER BY d.seq LIMIT ?",
        (now, *skip, limit),
    ):
        try:
            spooled = SpooledJob.model_validate_json(job)
        except ValidationError as error:
            found.append(Unreadable(seq=seq, key=key, error=f"this version cannot read the spooled job: {error}"))
            continue
        found.append(Pending(seq=seq, key=key, event=event, job=spooled.job, attempts=attempts,
                             received_at=received_at))
    return found


def _prune(connection: sqlite3.Connection, before: float) -> int:
    return connection.execute("DELETE FROM deliveries WHERE state = 'done' AND finished_at < ?", (before,)).rowcount


# --- the spool a webhook process owns ----------------------------------------------------------------


def _writer_pragmas(roles: tuple[Role, ...]) -> list[str]:
    """How each role's writes reach the disk when the roles are in two processes.

    The ingress must fsync before it answers (`synchronous=FULL`) and should never pay for a checkpoint
    while GitHub waits, so it leaves checkpoints to the drain. The drain's writes are outcomes: one lost
    to a power cut only means the delivery is carried out again, which is safe (every job is idempotent),
    so it does not fsync each one (`NORMAL`: the WAL reaches the disk at the ingress's next commit or at a
    checkpoint). Together in one process, one writer does both, as safely as the ingress needs.
    """
    if roles == ("ingress",):
        return ["PRAGMA wal_autocheckpoint=0"]
    if roles == ("drain",):
        return ["PRAGMA synchronous=NORMAL"]
    return []


class _Connection:
    """A SQLite connection and the one thread that uses it."""

    def __init__(self, path: Path, name: str, *, create: bool) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spool-{name}")
        try:
            self.connection = self.thread.submit(connect, path, create=create).result()
        except BaseException:
            self.thread.shutdown()
            raise

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, call, self.connection)

    def close(self) -> None:
        self.thread.submit(self.connection.close).result()
        self.thread.shutdown()


class Spool:
    """The spool of one webhook process. `open` takes its lock; `close` gives it back."""

    def __init__(self, path: Path, locks: list[FileLock], writer: _Connection, reader: _Connection,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._locks = locks
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._writes: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._committing = False
        self._closed = False
        self.last_write_error: str | None = None

    @classmethod
    def open(cls, path: Path, roles: tuple[Role, ...] = BOTH, clock: Callable[[], float] = time.time) -> Spool:
        """The spool at `path`, for `roles`. Raises `SpoolBusy` when another process holds one of them,
        `SpoolError` when it cannot be opened."""
        path = path.resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SpoolError(f"cannot create the spool's folder {path.parent}: {error}") from None
        locks: list[FileLock] = []
        try:
            for role in roles:
                lock = FileLock(f"{path}.{role}.lock", thread_local=False)  # released by another thread
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    raise SpoolBusy(f"the spool {path} is in use by another webhook process ({role}); give each "
                                    "replica its own (SPEC2SHIP_WEBHOOK_SPOOL)") from None
                locks.append(lock)
            writer = _Connection(path, "writer", create=True)
            writer.connection.execute("PRAGMA busy_timeout=0")  # `_begin` waits, in finer steps
            for pragma in _writer_pragmas(roles):
                writer.connection.execute(pragma)
        except BaseException:
            for held in locks:
                held.release()
            raise
        try:
            reader = _Connection(path, "reader", create=False)
        except BaseException:
            writer.close()
            for held in locks:
                held.release()
            raise
        return cls(path, locks, writer, reader, clock)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        self._writer.close()
        for lock in self._locks:
            lock.release()

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._reader.run(query)
        except sqlite3.Error as error:
            raise SpoolError(f"cannot read the spool {self.path}: {error}") from None

    async def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `change` in the next group commit; returns once that commit is on disk."""
        if self._closed:
            raise SpoolError(f"the spool {self.path} is closed")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.append((change, done))
        if not self._committing:
            self._committing = True
            asyncio.get_running_loop().create_task(self._commit_all())
        return await done

    async def _commit_all(self) -> None:
        """Commits what is waiting, one transaction at a time, until nothing waits."""
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                try:
                    results = await self._writer.run(
                        functools.partial(self._transaction, changes=[change for change, _ in batch]))
                except Exception as error:  # every waiting writer hears of it; none may wait forever
                    self.last_write_error = str(error)
                    failure: Exception = error
                    if isinstance(error, sqlite3.Error | OSError):
                        failure = SpoolError(f"cannot write the spool {self.path}: {error}")
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(failure)
                    continue
                self.last_write_error = None
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            self._committing = False

    @staticmethod
    def _begin(connection: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting for the other process's transaction in steps of 0.2 ms: SQLite's own busy
        handler sleeps 1, 2, 5, 10... ms, and an answer would wait for the sleep, not for the other commit."""
        deadline = time.monotonic() + BUSY_S
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(BUSY_POLL_S)

    @classmethod
    def _transaction(cls, connection: sqlite3.Connection, changes: Iterable[Callable[[sqlite3.Connection], Any]]
                     ) -> list[Any]:
        cls._begin(connection)
        try:
            results = [change(connection) for change in changes]
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return results

    async def append(self, entry: Entry) -> bool:
        """Spool a delivery; False when its key was already spooled (a redelivery). Durable on return."""
        return await self._write(lambda connection: _insert(connection, entry))

    async def finish(self, result: Done | Retry) -> None:
        """Record what came of a delivery: done with its outcome (and its replies spooled), or tried again later."""
        now = self._clock()
        await self._write(lambda connection: _finish(connection, result, now))

    async def due(self, limit: int, skip: Collection[int] = ()) -> list[Pending | Unreadable]:
        """The oldest pending deliveries whose next attempt is due, in the order they arrived; at most one per
        run (the first of its queue), so that one run's deliveries are carried out in order. `skip`: the
        `seq` of deliveries in progress (still pending; the ones behind them in their run's queue wait)."""
        now = self._clock()
        return await self._read(lambda connection: _due(connection, now, limit, skip))

    async def prune(self, keep_s: float) -> int:
        """Forget finished deliveries older than `keep_s` (their ids no longer answer a redelivery)."""
        before = self._clock() - keep_s
        removed: int = await self._write(lambda connection: _prune(connection, before))
        return removed

    async def stats(self) -> Stats:
        return await self._read(lambda connection: stats(connection, self.path))

    async def row(self, key: str) -> Row | None:
        return await self._read(lambda connection: row(connection, key))

    async def data_version(self) -> int:
        """Changes whenever another connection (the other role's process, or this one's writer) commits:
        how a drain in its own process learns, cheaply, that a delivery arrived."""
        version: int = await self._read(lambda connection: connection.execute("PRAGMA data_version").fetchone()[0])
        return version

    async def count_due(self) -> int:
        """How many `due` would offer now (without a limit)."""
        now = self._clock()
        count: int = await self._read(lambda connection: connection.execute(
            f"SELECT count(*) {_DUE}", (now,)).fetchone()[0])
        return count


class SpoolReader:
    """The spool of a running (or stopped) webhook, read from another process: `spec2ship webhook spool`.

    It takes no lock: SQLite's WAL lets it read while the webhook writes."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self._connection = connect(self.path, create=False)

    def __enter__(self) -> SpoolReader:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()

    def stats(self) -> Stats:
        try:
            return stats(self._connection, self.path)
        except sqlite3.Error as error:
            raise SpoolError(f"cannot read the spool {self.path}: {error}") from None

    def rows(self, *, pending_only: bool, limit: int) -> list[Row]:
        try:
            return rows(self._connection, pending_only=pending_only, limit=limit)
        except sqlite3.Error as error:
            raise SpoolError(f"cannot read the spool {self.path}: {error}") from None

    def row(self, key: str) -> Row | None:
        return row(self._connection, key)
