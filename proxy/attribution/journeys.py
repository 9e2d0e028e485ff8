"""Journeys in SQLite: linksClickedId -> click ids, first/last seen, fbc/fbp.

Later server-side events (a hire reported by the ATS) are attributed from here
without the visitor's cookie. The request path only calls `record(visit)`, which
touches memory (the buffer of `write_behind.WriteBehind`); batches are written by
the outbox's writer process when it is given one (`writer`), in the transactions it
commits for the submits, in slices of `SLICE` journeys (`FLOOD_SLICE` while the buffer
fills up again behind the batch), each awaited before the next is sent: a submit
queued meanwhile waits for one slice, not for the whole batch. A slice alone in its
transaction is not synced to disk (`sync=False`): a crash loses none of it, a power
loss may lose the slices written since the last submit or checkpoint synced the WAL,
and a submit never waits for a journeys-only fsync.
Without a writer process (or once it is closed) the file's
`sqlite_worker.shared_writer` thread writes a batch in one transaction. Several
processes may share the file: a slice or batch runs inside one IMMEDIATE
transaction, reads the stored rows and merges (per param the newest capture wins), so
writing it again after a failure changes nothing (a batch is acknowledged, and leaves
the buffer, once all its slices are committed).
`Journey` is defined in `journey_rows` (with the batch write the writers run) and
exported here.
The same transaction adds the funnel's click counters (`conversions.funnel`) for journeys
and params stored for the first time; `journey_clicks_value` finds journeys by a
click-id value whatever its param (the operators' search).
"""

from __future__ import annotations

import sqlite3
import time

from proxy.attribution.journey_rows import (
    COLUMNS,
    Journey,
    Pending,
    row_to_journey,
    write_journeys,
)
from proxy.attribution.write_behind import MAX_PENDING, WriteBehind
from proxy.conversions.funnel import SQL_SCHEMA
from proxy.sqlite_worker import SqliteWorker, shared_writer
from proxy.writer_process import WriterProcess

__all__ = ["Journey", "JourneyStore"]
PRUNE_EVERY = 3600.0         # seconds between prune passes, with retention_days
SLICE = 25                   # journeys per transaction: ~0.7 ms of writing, ~25 µs each
# Behind a flood (a quarter of the buffer waiting again while a batch is written), four
# times as many a slice: one round trip per 25 journeys through a busy event loop falls
# behind thousands of new click ids a second, and the buffer drops what does not fit.
# A submit may then wait behind ~2.5 ms of writing instead of ~0.7.
FLOOD_SLICE = 4 * SLICE

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS journeys (
        links_clicked_id TEXT PRIMARY KEY,
        click_ids TEXT NOT NULL,            -- JSON {param: {"value": str, "seen_at": float}}
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        fbc TEXT,
        fbp TEXT,
        preview INTEGER NOT NULL DEFAULT 0)""",
    # Added since 0.1: for an older file (on a new one, a duplicate column, ignored).
    "ALTER TABLE journeys ADD COLUMN preview INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS journey_clicks (
        param TEXT NOT NULL,
        value TEXT NOT NULL,
        links_clicked_id TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (param, value, links_clicked_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS journey_clicks_visitor ON journey_clicks (links_clicked_id)",
    "CREATE INDEX IF NOT EXISTS journeys_last_seen ON journeys (last_seen)",
    "CREATE INDEX IF NOT EXISTS journey_clicks_value ON journey_clicks (value, seen_at)",
    SQL_SCHEMA,
)
_SELECT = f"SELECT {COLUMNS} FROM journeys WHERE links_clicked_id IN ({{}})"
_SQL_CHUNK = 500             # bound on "IN (?, ...)" parameters


class JourneyStore(WriteBehind):
    """`WriteBehind` on a SQLite file, through the file's shared writer."""

    def __init__(self, path: str, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, recent_ttl: float = 60.0,
                 retention_days: float | None = None,
                 writer: WriterProcess | None = None) -> None:
        super().__init__(flush_interval=flush_interval, batch_size=batch_size,
                         max_pending=max_pending, recent_ttl=recent_ttl)
        self._path = path
        self._writer = writer
        if writer is not None:
            writer.preload(write_journeys)
        self._retention = retention_days * 86400 if retention_days else None
        self._last_prune = 0.0
        self._worker: SqliteWorker | None = None

    # -- storage (the writer's thread owns the connection) -----------------------------

    @property
    def worker(self) -> SqliteWorker:
        if self._worker is None:
            self._worker = shared_writer(self._path)
            self._worker.call(_create_schema, plain=True)
        return self._worker

    async def _open(self) -> None:
        self.worker  # noqa: B018 - opened now rather than at the first read

    async def _close(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker.close()

    async def _housekeep(self) -> None:
        if self._retention and time.monotonic() - self._last_prune > PRUNE_EVERY:
            self._last_prune = time.monotonic()
            await self.prune(time.time() - self._retention)

    async def _write_batch(self, entries: list[Pending]) -> None:
        worker = self.worker            # the schema, before the first write either way
        if self._writer is None or self._writer.closed:
            await worker.run_many(write_journeys, entries)      # the thread: as one
            return
        start = 0
        while start < len(entries):
            size = FLOOD_SLICE if self.pending >= self._max_pending // 4 else SLICE
            await self._writer.run(write_journeys, entries[start:start + size], sync=False)
            start += size

    async def _load(self, links_clicked_id: str) -> Journey | None:
        stored = await self.worker.run(lambda c: self._read(c, [links_clicked_id]))
        return stored.get(links_clicked_id)

    async def _find_stored(self, param: str, value: str) -> Journey | None:
        vid = await self.worker.run(lambda c: self._find(c, param, value))
        return None if vid is None else await self.get(vid)

    async def prune(self, before: float) -> int:
        """Forget journeys not seen since `before` (their cookies have expired)."""
        return await self.worker.run(lambda c: self._prune(c, before))

    async def _ids_stored(self, value: str, limit: int) -> list[str]:
        return await self.worker.run(lambda c: self._by_value(c, value, limit))

    def _read(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, Journey]:
        out = {}
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i:i + _SQL_CHUNK]
            for row in conn.execute(_SELECT.format(",".join("?" * len(chunk))), chunk):
                out[row[0]] = row_to_journey(row)
        return out

    def _find(self, conn: sqlite3.Connection, param: str, value: str) -> str | None:
        row = conn.execute(
            "SELECT links_clicked_id FROM journey_clicks WHERE param = ? AND value = ?"
            " ORDER BY seen_at DESC LIMIT 1", (param, value)).fetchone()
        return row[0] if row else None

    def _by_value(self, conn: sqlite3.Connection, value: str, limit: int) -> list[str]:
        rows = conn.execute(
            "SELECT links_clicked_id, max(seen_at) AS t FROM journey_clicks WHERE value = ?"
            " GROUP BY links_clicked_id ORDER BY t DESC LIMIT ?", (value, limit))
        return [r[0] for r in rows]

    def _prune(self, conn: sqlite3.Connection, before: float) -> int:
        conn.execute("DELETE FROM journey_clicks WHERE links_clicked_id IN"
                     " (SELECT links_clicked_id FROM journeys WHERE last_seen < ?)", (before,))
        return conn.execute("DELETE FROM journeys WHERE last_seen < ?", (before,)).rowcount


def _create_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        try:
            conn.execute(statement)
        except sqlite3.OperationalError as e:
            if "duplicate column" not in str(e):    # added before
                raise
