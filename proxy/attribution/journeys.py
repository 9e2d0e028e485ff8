"""Journeys in SQLite: linksClickedId -> click ids, first/last seen, fbc/fbp.

Later server-side events (a hire reported by the ATS) are attributed from here
without the visitor's cookie. The request path only calls `record(visit)`, which
touches memory (the buffer of `write_behind.WriteBehind`); batches are written in
one thread that owns the connection. Several processes may share the file: each
batch is one IMMEDIATE transaction that reads the stored rows and merges (per param
the newest capture wins). `Journey` is defined in `write_behind` and exported here.
The same transaction adds the funnel's click counters (`conversions.funnel`) for journeys
and params stored for the first time; `journey_clicks_value` finds journeys by a
click-id value whatever its param (the operators' search).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from proxy.attribution.clickids import ClickId
from proxy.attribution.write_behind import MAX_PENDING, Journey, Pending, WriteBehind
from proxy.conversions.funnel import SQL_ADD, SQL_SCHEMA, Cell, click_cells
from proxy.state import json_param, open_sqlite

__all__ = ["Journey", "JourneyStore"]
T = TypeVar("T")
PRUNE_EVERY = 3600.0         # seconds between prune passes, with retention_days

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
# A batch is one JSON parameter and one statement per table: each sqlite3 step lets
# go of the GIL, and a writer thread that takes it back once per row waits behind
# a busy event loop for every row.
_UPSERT = """INSERT INTO journeys
    (links_clicked_id, click_ids, first_seen, last_seen, fbc, fbp, preview)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]')
    FROM json_each(?) WHERE true
    ON CONFLICT (links_clicked_id) DO UPDATE SET click_ids = excluded.click_ids,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    fbc = excluded.fbc, fbp = excluded.fbp, preview = excluded.preview"""
_UPSERT_CLICK = """INSERT INTO journey_clicks
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]')
    FROM json_each(?) WHERE true
    ON CONFLICT DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)"""
_COLUMNS = "links_clicked_id, click_ids, first_seen, last_seen, fbc, fbp, preview"
_SELECT_BATCH = f"""SELECT json_group_array(json_array({_COLUMNS})) FROM journeys
    WHERE links_clicked_id IN (SELECT value FROM json_each(?))"""
_SELECT = f"SELECT {_COLUMNS} FROM journeys WHERE links_clicked_id IN ({{}})"
_SQL_CHUNK = 500             # bound on "IN (?, ...)" parameters


def _row_to_journey(row: tuple[Any, ...]) -> Journey:
    raw = orjson.loads(row[1])
    clicks = {p: ClickId(str(c["value"]), float(c["seen_at"])) for p, c in raw.items()}
    return Journey(row[0], clicks, row[2], row[3], row[4], row[5], bool(row[6]))


def _journey_to_row(j: Journey) -> tuple[Any, ...]:
    clicks = {p: {"value": c.value, "seen_at": c.seen_at} for p, c in j.click_ids.items()}
    return (j.links_clicked_id, orjson.dumps(clicks).decode(), j.first_seen, j.last_seen,
            j.fbc, j.fbp, int(j.preview))


class JourneyStore(WriteBehind):
    """`WriteBehind` on a SQLite file; one executor thread owns the connection."""

    def __init__(self, path: str, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, recent_ttl: float = 60.0,
                 retention_days: float | None = None) -> None:
        super().__init__(flush_interval=flush_interval, batch_size=batch_size,
                         max_pending=max_pending, recent_ttl=recent_ttl)
        self._path = path
        self._retention = retention_days * 86400 if retention_days else None
        self._last_prune = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journeys")
        self._conn: Any = None

    # -- storage (one executor thread owns the connection) ---------------------------

    async def _open(self) -> None:
        await self._run(self._db)

    async def _close(self) -> None:
        await self._run(self._close_db)
        self._executor.shutdown(wait=True)

    async def _housekeep(self) -> None:
        if self._retention and time.monotonic() - self._last_prune > PRUNE_EVERY:
            self._last_prune = time.monotonic()
            await self.prune(time.time() - self._retention)

    async def _write_batch(self, entries: list[Pending]) -> None:
        await self._run(self._write, entries)

    async def _load(self, links_clicked_id: str) -> Journey | None:
        stored = await self._run(self._read, [links_clicked_id])
        return stored.get(links_clicked_id)

    async def _find_stored(self, param: str, value: str) -> Journey | None:
        vid = await self._run(self._find, param, value)
        return None if vid is None else await self.get(vid)

    async def prune(self, before: float) -> int:
        """Forget journeys not seen since `before` (their cookies have expired)."""
        return await self._run(self._prune, before)

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _ids_stored(self, value: str, limit: int) -> list[str]:
        return await self._run(self._by_value, value, limit)

    def _db(self) -> Any:
        if self._conn is None:
            conn = open_sqlite(self._path)
            for statement in _SCHEMA:
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as e:
                    if "duplicate column" not in str(e):    # added before
                        raise
            self._conn = conn
        return self._conn

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read(self, ids: list[str]) -> dict[str, Journey]:
        conn, out = self._db(), {}
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i:i + _SQL_CHUNK]
            for row in conn.execute(_SELECT.format(",".join("?" * len(chunk))), chunk):
                out[row[0]] = _row_to_journey(row)
        return out

    def _find(self, param: str, value: str) -> str | None:
        row = self._db().execute(
            "SELECT links_clicked_id FROM journey_clicks WHERE param = ? AND value = ?"
            " ORDER BY seen_at DESC LIMIT 1", (param, value)).fetchone()
        return row[0] if row else None

    def _by_value(self, value: str, limit: int) -> list[str]:
        rows = self._db().execute(
            "SELECT links_clicked_id, max(seen_at) AS t FROM journey_clicks WHERE value = ?"
            " GROUP BY links_clicked_id ORDER BY t DESC LIMIT ?", (value, limit))
        return [r[0] for r in rows]

    def _write(self, entries: list[Pending]) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")      # the merge reads what other processes wrote
        try:
            ids = json_param([e.journey.links_clicked_id for e in entries])
            found = orjson.loads(conn.execute(_SELECT_BATCH, (ids,)).fetchone()[0])
            stored = {row[0]: _row_to_journey(row) for row in found}
            rows: list[tuple[Any, ...]] = []
            clicks: list[tuple[str, str, str, float]] = []
            cells: list[Cell] = []
            for entry in entries:
                journey = entry.journey
                merged = stored.get(journey.links_clicked_id)
                held = set() if merged is None else set(merged.click_ids)
                if merged is None:
                    merged = journey
                else:
                    merged.merge(journey)
                cells += click_cells(
                    {p: c.seen_at for p, c in journey.click_ids.items() if p not in held},
                    journey.links_clicked_id not in stored, merged.first_seen, merged.preview)
                rows.append(_journey_to_row(merged))
                clicks.extend((p, v, journey.links_clicked_id, t)
                              for (p, v), t in entry.seen.items())
            conn.execute(_UPSERT, (json_param(rows),))
            if clicks:
                conn.execute(_UPSERT_CLICK, (json_param(clicks),))
            if cells:
                conn.execute(SQL_ADD, (json_param(cells), time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _prune(self, before: float) -> int:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM journey_clicks WHERE links_clicked_id IN"
                         " (SELECT links_clicked_id FROM journeys WHERE last_seen < ?)", (before,))
            count = conn.execute("DELETE FROM journeys WHERE last_seen < ?", (before,)).rowcount
            conn.execute("COMMIT")
            return count
        except BaseException:
            conn.execute("ROLLBACK")
            raise
