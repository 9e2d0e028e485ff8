"""Journeys in SQLite: linksClickedId -> click ids, first/last seen, fbc/fbp.

Later server-side events (a hire reported by the ATS) are attributed from here
without the visitor's cookie. The request path only calls `record(visit)`, which
touches memory: visits go into a bounded write-behind buffer (repeated visits of
one id coalesce; an unchanged visitor seen within `recent_ttl` is skipped) that a
background task writes in batches, in one thread that owns the connection.
Several processes may share the file: each batch is one IMMEDIATE transaction
that reads the stored rows and merges (per param the newest capture wins).

What is recorded: every visit that carries click ids or comes back with a
`linksClickedId` cookie. A cookieless first hit without click ids (a crawler,
or a visitor whose id is not yet stored by their browser) is not: it would grow
the table by one row per bot request and can never be attributed anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from cachetools import TTLCache

from proxy.attribution.clickids import ClickId
from proxy.attribution.visit import Visit
from proxy.state import open_sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS journeys (
        links_clicked_id TEXT PRIMARY KEY,
        click_ids TEXT NOT NULL,            -- JSON {param: {"value": str, "seen_at": float}}
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        fbc TEXT,
        fbp TEXT)""",
    """CREATE TABLE IF NOT EXISTS journey_clicks (
        param TEXT NOT NULL,
        value TEXT NOT NULL,
        links_clicked_id TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (param, value, links_clicked_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS journey_clicks_visitor ON journey_clicks (links_clicked_id)",
    "CREATE INDEX IF NOT EXISTS journeys_last_seen ON journeys (last_seen)",
)
_UPSERT = """INSERT INTO journeys VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (links_clicked_id) DO UPDATE SET click_ids = excluded.click_ids,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    fbc = excluded.fbc, fbp = excluded.fbp"""
_UPSERT_CLICK = """INSERT INTO journey_clicks VALUES (?, ?, ?, ?)
    ON CONFLICT DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)"""
_SELECT = "SELECT * FROM journeys WHERE links_clicked_id IN ({})"
_SQL_CHUNK = 500             # bound on "IN (?, ...)" parameters


@dataclass(slots=True)
class Journey:
    links_clicked_id: str
    click_ids: dict[str, ClickId] = field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    fbc: str | None = None
    fbp: str | None = None

    def merge(self, other: Journey) -> None:
        """Fold `other` (same id) into this one; the newest capture of a param wins."""
        for param, click in other.click_ids.items():
            mine = self.click_ids.get(param)
            if mine is None or click.seen_at >= mine.seen_at:
                self.click_ids[param] = click
        newer = other.last_seen >= self.last_seen
        self.fbc = (other.fbc or self.fbc) if newer else (self.fbc or other.fbc)
        self.fbp = (other.fbp or self.fbp) if newer else (self.fbp or other.fbp)
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


@dataclass(slots=True)
class _Pending:
    """A buffered journey plus every click id it carried since the last flush: a
    value replaced before the flush must still lead back to this visitor."""

    journey: Journey
    seen: dict[tuple[str, str], float]

    def add(self, journey: Journey) -> None:
        self.journey.merge(journey)
        for param, click in journey.click_ids.items():
            key = (param, click.value)
            self.seen[key] = max(click.seen_at, self.seen.get(key, click.seen_at))


def _row_to_journey(row: tuple[Any, ...]) -> Journey:
    raw = orjson.loads(row[1])
    clicks = {p: ClickId(str(c["value"]), float(c["seen_at"])) for p, c in raw.items()}
    return Journey(row[0], clicks, row[2], row[3], row[4], row[5])


def _journey_to_row(j: Journey) -> tuple[Any, ...]:
    clicks = {p: {"value": c.value, "seen_at": c.seen_at} for p, c in j.click_ids.items()}
    return (j.links_clicked_id, orjson.dumps(clicks).decode(), j.first_seen, j.last_seen,
            j.fbc, j.fbp)


class JourneyStore:
    def __init__(self, path: str, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = 50_000, recent_ttl: float = 60.0,
                 retention_days: float | None = None) -> None:
        self._path = path
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._retention = retention_days * 86400 if retention_days else None
        self._pending: dict[str, _Pending] = {}
        self._recent: TTLCache[str, tuple[Any, ...]] = TTLCache(maxsize=100_000, ttl=recent_ttl)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journeys")
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0           # visits not recorded because the buffer was full
        self.failed_flushes = 0

    # -- request path (memory only) ------------------------------------------------

    def record(self, visit: Visit, now: float | None = None) -> None:
        if visit.new_visitor and not visit.click_ids:
            return
        vid = visit.links_clicked_id
        fingerprint = (tuple(sorted((p, c.value) for p, c in visit.click_ids.items())),
                       visit.fbc, visit.fbp)
        if self._recent.get(vid) == fingerprint:
            return
        now = time.time() if now is None else now
        first = min([now, *(c.seen_at for c in visit.click_ids.values())])
        journey = Journey(vid, dict(visit.click_ids), first, now, visit.fbc, visit.fbp)
        pending = self._pending.get(vid)
        if pending is not None:
            pending.add(journey)
        elif len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        else:
            self._pending[vid] = _Pending(journey, {
                (p, c.value): c.seen_at for p, c in journey.click_ids.items()})
        self._recent[vid] = fingerprint
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._run(self._db)
        self._task = asyncio.create_task(self._loop(), name="journeys-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        last_prune = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                if self._retention and time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    await self.prune(time.time() - self._retention)
            except Exception:       # a full disk must not end the task; retried next turn
                log.exception("journey flush failed")

    # -- reads and writes (one executor thread owns the connection) ------------------

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                await self._run(self._write, list(batch.values()))
            except Exception:
                self.failed_flushes += 1
                for vid, entry in batch.items():     # keep them for the next attempt
                    newer = self._pending.get(vid)
                    if newer is not None:
                        entry.add(newer.journey)
                        entry.seen.update(newer.seen)
                    self._pending[vid] = entry
                raise

    async def get(self, links_clicked_id: str) -> Journey | None:
        stored = await self._run(self._read, [links_clicked_id])
        return self._with_pending(links_clicked_id, stored.get(links_clicked_id))

    async def find_by_click(self, param: str, value: str) -> Journey | None:
        """The journey that most recently carried this click id."""
        best: tuple[float, str] | None = None
        for pending_id, entry in self._pending.items():
            seen_at = entry.seen.get((param, value))
            if seen_at is not None and (best is None or seen_at > best[0]):
                best = (seen_at, pending_id)
        vid = best[1] if best else await self._run(self._find, param, value)
        return None if vid is None else await self.get(vid)

    async def prune(self, before: float) -> int:
        """Forget journeys not seen since `before` (their cookies have expired)."""
        return await self._run(self._prune, before)

    def _with_pending(self, vid: str, stored: Journey | None) -> Journey | None:
        entry = self._pending.get(vid)
        if entry is None:
            return stored
        pending = entry.journey
        if stored is None:
            return Journey(vid, dict(pending.click_ids), pending.first_seen,
                           pending.last_seen, pending.fbc, pending.fbp)
        stored.merge(pending)
        return stored

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> Any:
        if self._conn is None:
            conn = open_sqlite(self._path)
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def _close(self) -> None:
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

    def _write(self, entries: list[_Pending]) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")      # the merge reads what other processes wrote
        try:
            stored = self._read([e.journey.links_clicked_id for e in entries])
            rows: list[tuple[Any, ...]] = []
            clicks: list[tuple[str, str, str, float]] = []
            for entry in entries:
                journey = entry.journey
                merged = stored.get(journey.links_clicked_id)
                if merged is None:
                    merged = journey
                else:
                    merged.merge(journey)
                rows.append(_journey_to_row(merged))
                clicks.extend((p, v, journey.links_clicked_id, t)
                              for (p, v), t in entry.seen.items())
            conn.executemany(_UPSERT, rows)
            conn.executemany(_UPSERT_CLICK, clicks)
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
