"""The outbox in SQLite (WAL): one file shared by the workers of one host.

Tables: `edge_outbox` (one row per event and sink, with the network's last answer),
`edge_dedupe` (visitor, event, job → expiry) and `edge_event_ids` (event_id → its
visitor, the first submit's result, and the event unless its rows hold it). For the
operators, in the same writes: `edge_sink_hours` (marks per sink and hour) and
`edge_counts` (the funnel's counters and the rules' hits, `conversions.funnel`). A submit
is written by the outbox's writer process (`writer_process`: a visitor's page waits for
it, and a thread behind a busy event loop waits for the GIL at every SQLite step); the
journeys of the same file are written by it too (`stores.open_stores` hands it to
them). Everything else runs in the file's `SqliteWorker` thread (`shared_writer`),
beside it on the same WAL file. State moves follow `states.TRANSITIONS`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.funnel import (
    KEEP_SECONDS,
    SQL_PURGE,
    SQL_SCHEMA,
    day_of,
)
from proxy.conversions.outbox import (
    EVENT_ID_KEEP,
    HOUR_OUTCOMES,
    HOURS_KEEP,
    LAST_BODY,
    ROW_FIELDS,
    SENT_KEEP,
    OutboxBase,
    OutboxRow,
    SubmitResult,
    decode_row,
    hour_of,
)
from proxy.conversions.routing import Consent, route
from proxy.conversions.sqlite_submit import Submit, init_submit, submit_many
from proxy.conversions.states import OPEN_STATES, Action, RowState, sources, sql_in, target
from proxy.metrics import Metrics
from proxy.sqlite_worker import SqliteWorker, shared_writer
from proxy.writer_process import WriterProcess

SCHEMA = """
CREATE TABLE IF NOT EXISTS edge_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    event BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires_at REAL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT,
    dead_body TEXT
);
CREATE INDEX IF NOT EXISTS edge_outbox_due ON edge_outbox (sink, state, next_attempt_at);
CREATE TABLE IF NOT EXISTS edge_dedupe (
    visitor TEXT NOT NULL, event TEXT NOT NULL, job TEXT NOT NULL,
    expires_at REAL NOT NULL, event_id TEXT NOT NULL,
    PRIMARY KEY (visitor, event, job)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge_event_ids (
    event_id TEXT PRIMARY KEY, result BLOB NOT NULL, created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge_sink_hours (
    sink TEXT NOT NULL, hour INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, sink)
) WITHOUT ROWID;
"""
# Columns added since 0.1, for files an older version created.
_ADDED = (("edge_outbox", "last_code", "INTEGER"), ("edge_outbox", "last_body", "TEXT"),
          ("edge_event_ids", "visitor", "TEXT"), ("edge_event_ids", "event", "BLOB"))
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS edge_event_ids_visitor ON edge_event_ids (visitor)",
    "CREATE INDEX IF NOT EXISTS edge_event_ids_time ON edge_event_ids (created_at)",
)

_COLUMNS = ", ".join(ROW_FIELDS)
_OPEN = sql_in(OPEN_STATES)


def _init(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    conn.execute(SQL_SCHEMA)
    for table, column, kind in _ADDED:
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as e:     # another process added it first
                if "duplicate column" not in str(e):
                    raise
    for statement in _INDEXES:
        conn.execute(statement)
    init_submit(conn)


_ADD_HOURS = ("INSERT INTO edge_sink_hours (sink, hour, {0}) VALUES (?, ?, ?)"
              " ON CONFLICT (hour, sink) DO UPDATE SET {0} = {0} + excluded.{0}")


def _count_hour(c: sqlite3.Connection, sink: str, action: Action, n: int, now: float) -> None:
    if n:
        c.execute(_ADD_HOURS.format(HOUR_OUTCOMES[action.value]), (sink, hour_of(now), n))


class NotAState(ValueError):
    """The SQLite file holds no outbox: not the proxy's state."""


def _existing(conn: sqlite3.Connection) -> None:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'edge_outbox'").fetchone()
    if found is None:
        raise NotAState("the database holds no careers-edge outbox")
    init_submit(conn)


class SqliteOutbox(OutboxBase):
    """`Outbox` on a SQLite file; `clock` is injectable for tests.

    A submit is acknowledged (and the visitor's response finished) only after its
    commit is synced to disk (`synchronous=FULL`): an acknowledged conversion
    survives a power loss. Group commit keeps that to one sync per batch of submits.
    The writer process starts with `start()` or the first submit, and stops with
    `close()`; a submit in flight when it dies raises `WriterDied`.
    `create=False` (the `outbox` command) opens an existing state only."""

    def __init__(self, path: str, *, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, create: bool = True) -> None:
        super().__init__(metrics)
        self.path = path
        self.clock = clock
        self._closed = False
        if create:      # one writer for the file: journeys and the feed commit with it
            self.worker = shared_writer(path, durable=True)
            try:
                self.worker.call(_init, plain=True)
            except BaseException:
                self.worker.users -= 1
                raise
        else:
            self.worker = SqliteWorker(path, _existing, name="outbox-sqlite", create=False,
                                       durable=True)
        self.writer = WriterProcess(path, init_submit, durable=True)
        self.writer.preload(submit_many)

    @property
    def commits(self) -> int:
        """Transactions committed for this outbox: the writer process's and the thread's
        (which a file's other stores share)."""
        return self.worker.commits + self.writer.commits

    async def start(self) -> None:
        await self.writer.started()

    # -- the request path ---------------------------------------------------------

    async def submit(self, event: Event, sinks: Sequence[Sink], *,
                     consent: Consent) -> SubmitResult:
        plan = route(event, sinks, consent=consent)
        now = self.clock()
        return self._submitted(await self.writer.run(submit_many, Submit(event, plan, now)))

    # -- delivery -----------------------------------------------------------------

    async def lease(self, sink: str, owner: str, limit: int,
                    lease_seconds: float) -> list[OutboxRow]:
        now = self.clock()
        expired, rows = await self.worker.run(
            lambda c: _lease(c, sink, owner, limit, lease_seconds, now))
        self._expired(sink, expired)
        return rows

    async def mark_sent(self, ids: Sequence[int], owner: str, code: int | None = None) -> int:
        return await self._move(ids, owner, Action.SEND, {"last_code": code, "last_body": ""})

    async def mark_retry(self, ids: Sequence[int], owner: str, delay: float,
                         error: str, code: int | None = None, body: str = "") -> int:
        return await self._move(ids, owner, Action.RETRY,
                                {"next_attempt_at": self.clock() + delay, "last_error": error,
                                 "last_code": code, "last_body": body[:LAST_BODY]})

    async def mark_dead(self, ids: Sequence[int], owner: str, error: str,
                        body: str = "", code: int | None = None) -> int:
        return await self._move(ids, owner, Action.GIVE_UP,
                                {"last_error": error, "dead_body": body, "last_code": code,
                                 "last_body": body[:LAST_BODY]})

    async def release(self, owner: str) -> int:
        now = self.clock()
        sql = (f"UPDATE edge_outbox SET state = ?, attempts = MAX(attempts - 1, 0), "
               f"next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL, "
               f"updated_at = ? WHERE state IN {sql_in(sources(Action.RELEASE))} "
               f"AND lease_owner = ?")
        return await self.worker.run(
            lambda c: c.execute(sql, (target(Action.RELEASE), now, now, owner)).rowcount)

    async def _move(self, ids: Sequence[int], owner: str, action: Action,
                    values: dict[str, Any]) -> int:
        """Only the lease holder records an outcome: a reclaimed row is not its any more."""
        if not ids:
            return 0
        now = self.clock()
        sets = "".join(f", {k} = ?" for k in values)
        marks = ",".join("?" * len(ids))
        sql = (f"UPDATE edge_outbox SET state = ?, lease_owner = NULL, lease_expires_at = NULL,"
               f" updated_at = ?{sets} WHERE id IN ({marks}) AND lease_owner = ? "
               f"AND state IN {sql_in(sources(action))} RETURNING sink")
        params = (target(action), now, *values.values(), *ids, owner)

        def q(c: sqlite3.Connection) -> int:
            moved = [r[0] for r in c.execute(sql, params).fetchall()]
            for sink in set(moved):
                _count_hour(c, sink, action, moved.count(sink), now)
            return len(moved)
        return await self.worker.run(q)

    # -- inspection and housekeeping ------------------------------------------------

    async def pending_count(self) -> int:
        sql = f"SELECT COUNT(*) FROM edge_outbox WHERE state IN {_OPEN}"
        return await self.worker.run(lambda c: c.execute(sql).fetchone()[0])

    async def oldest_pending_age(self) -> float:
        sql = f"SELECT MIN(created_at) FROM edge_outbox WHERE state IN {_OPEN}"
        oldest = await self.worker.run(lambda c: c.execute(sql).fetchone()[0])
        return 0.0 if oldest is None else max(self.clock() - oldest, 0.0)

    async def counts(self) -> dict[str, dict[str, int]]:
        def q(c: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for sink, state, n in c.execute(
                    "SELECT sink, state, COUNT(*) FROM edge_outbox GROUP BY sink, state"):
                out.setdefault(sink, {s.value: 0 for s in RowState})[state] = n
            return out
        return await self.worker.run(q)

    async def list_rows(self, *, dead: bool = False, limit: int = 100) -> list[OutboxRow]:
        states = "('dead')" if dead else _OPEN
        sql = (f"SELECT {_COLUMNS} FROM edge_outbox WHERE state IN {states} "
               f"ORDER BY id LIMIT ?")
        return await self.worker.run(lambda c: [decode_row(r) for r in c.execute(sql, (limit,))])

    async def get(self, row_id: int) -> OutboxRow | None:
        sql = f"SELECT {_COLUMNS} FROM edge_outbox WHERE id = ?"
        r = await self.worker.run(lambda c: c.execute(sql, (row_id,)).fetchone())
        return decode_row(r) if r else None

    async def retry_dead(self, sink: str | None = None, row_id: int | None = None) -> int:
        now = self.clock()
        sql = (f"UPDATE edge_outbox SET state = ?, attempts = 0, next_attempt_at = ?, "
               f"dead_body = NULL, updated_at = ? "
               f"WHERE state IN {sql_in(sources(Action.REQUEUE))} AND expires_at > ?")
        params: tuple[Any, ...] = (target(Action.REQUEUE), now, now, now)
        if sink is not None:
            sql += " AND sink = ?"
            params += (sink,)
        if row_id is not None:
            sql += " AND id = ?"
            params += (row_id,)
        return await self.worker.run(lambda c: c.execute(sql, params).rowcount)

    async def purge(self) -> None:
        now = self.clock()

        def q(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM edge_dedupe WHERE expires_at <= ?", (now,))
            c.execute("DELETE FROM edge_event_ids WHERE created_at <= ?", (now - EVENT_ID_KEEP,))
            c.execute("DELETE FROM edge_outbox WHERE state = 'sent' AND updated_at <= ?",
                      (now - SENT_KEEP,))
            c.execute("DELETE FROM edge_sink_hours WHERE hour < ?", (now - HOURS_KEEP,))
            c.execute(SQL_PURGE, (day_of(now - KEEP_SECONDS),))
        await self.worker.run(q)

    async def close(self) -> None:
        if not self._closed:        # once: the writer may be shared with other stores
            self._closed = True
            try:
                await self.writer.close()
            finally:
                await self.worker.close()


def _lease(c: sqlite3.Connection, sink: str, owner: str, limit: int, lease_seconds: float,
           now: float) -> tuple[int, list[OutboxRow]]:
    """Give up rows past the 7-day limit, then claim the due ones, oldest first."""
    expired = c.execute(
        f"UPDATE edge_outbox SET state = ?, last_error = 'expired', lease_owner = NULL,"
        f" lease_expires_at = NULL, updated_at = ? WHERE sink = ? AND expires_at <= ?"
        f" AND state IN {sql_in(sources(Action.EXPIRE))}",
        (target(Action.EXPIRE), now, sink, now)).rowcount
    _count_hour(c, sink, Action.EXPIRE, expired, now)
    rows = c.execute(
        f"UPDATE edge_outbox SET state = ?, lease_owner = ?, lease_expires_at = ?,"
        f" attempts = attempts + 1, updated_at = ? WHERE id IN ("
        f" SELECT id FROM edge_outbox WHERE sink = ? AND ("
        f"  (state IN {sql_in(sources(Action.LEASE))} AND next_attempt_at <= ?)"
        f"  OR (state IN {sql_in(sources(Action.RECLAIM))} AND lease_expires_at <= ?))"
        f" ORDER BY next_attempt_at, id LIMIT ?) RETURNING {_COLUMNS}",
        (target(Action.LEASE), owner, now + lease_seconds, now, sink, now, now, limit),
    ).fetchall()
    return expired, sorted((decode_row(r) for r in rows), key=lambda r: r.id)
