"""The job store: every harvested job with when it was first and last seen.

Reads are served from memory. `upsert` changes memory at once and marks the job
dirty; a background flusher writes dirty jobs to SQLite in batches through the
file's `sqlite_worker.shared_writer`, so the event loop never waits on the disk.
The same flusher picks up rows other processes (workers sharing the file) wrote,
so each worker's feed converges.

`JobStore` is the SQLite implementation of the small `Store` protocol the feed
uses; a Redis-backed store only needs the same five methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from proxy.background import cancel, spawn
from proxy.feed.jsonld import Job
from proxy.sqlite_worker import SqliteWorker, shared_writer

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0        # seconds between batched writes
REFRESH_EVERY = 30          # flushes between reads of rows other workers wrote
TOUCH_RESOLUTION = 60.0     # a re-seen, unchanged job is re-written at most once a minute
MAX_JOBS = 5000             # distinct jobs held; beyond it new keys are refused

SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_jobs (
    key        TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    updated    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_jobs_updated ON feed_jobs (updated);
"""
UPSERT = """
INSERT INTO feed_jobs (key, data, first_seen, last_seen, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    data = excluded.data,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    updated = excluded.updated
"""


@dataclass(frozen=True, slots=True)
class Entry:
    job: Job
    first_seen: float
    last_seen: float


class Store(Protocol):
    version: int                                # bumps whenever `all()` may have changed

    async def load(self) -> None: ...
    def upsert(self, job: Job, now: float) -> bool: ...
    def all(self) -> Iterable[Entry]: ...
    def prune(self, last_seen_before: float) -> int: ...
    async def close(self) -> None: ...


class JobStore:
    """SQLite-backed `Store`: table `feed_jobs` in the database file at `path`."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.version = 0
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._dirty: dict[str, Entry] = {}
        self._deleted: set[str] = set()
        self._db: SqliteWorker | None = None
        self._watermark = 0.0
        self._flusher: asyncio.Task | None = None

    # -- reads (memory) -------------------------------------------------------

    def all(self) -> Iterable[Entry]:
        return self._entries.values()

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    # -- writes (memory now, disk in the background) ---------------------------

    def upsert(self, job: Job, now: float) -> bool:
        """Record a sighting of `job`; False when the store is full and `job` is new."""
        old = self._entries.get(job.key)
        if old is None:
            if len(self._entries) >= MAX_JOBS:
                return False
            entry = Entry(job, now, now)
        elif old.job == job and old.first_seen <= now < old.last_seen + TOUCH_RESOLUTION:
            return True
        else:
            entry = Entry(job, min(old.first_seen, now), max(old.last_seen, now))
        self._entries[job.key] = entry
        self._dirty[job.key] = entry
        self._deleted.discard(job.key)
        if old is None or old.job != job:
            self.version += 1
        elif old.last_seen != entry.last_seen:
            self.version += 1     # visibility may depend on last_seen (expiry)
        return True

    def prune(self, last_seen_before: float) -> int:
        """Forget jobs not seen since `last_seen_before` (in memory now, on disk later)."""
        gone = [k for k, e in self._entries.items() if e.last_seen < last_seen_before]
        for key in gone:
            del self._entries[key]
            self._dirty.pop(key, None)
            self._deleted.add(key)
        if gone:
            self.version += 1
        return len(gone)

    # -- lifecycle ----------------------------------------------------------------

    async def load(self) -> None:
        """Open the database, read every job, and start the background flusher."""
        if self._db is None:
            self._db = shared_writer(self.path)
            await self._db.run(lambda c: c.executescript(SCHEMA), plain=True)
        self._merge(await self._db.run(lambda c: self._read_since(c, None)))
        if self._flusher is None:
            self._flusher = spawn(self._flush_loop(), "feed-store-flush")

    async def flush(self) -> None:
        """Write what is dirty now (also the shutdown path)."""
        if self._db is None or not (self._dirty or self._deleted):
            return
        batch, self._dirty = list(self._dirty.values()), {}
        deleted, self._deleted = list(self._deleted), set()
        try:
            await self._db.run(lambda c: self._write(c, batch, deleted))
        except (sqlite3.Error, OSError):
            # put back what was not re-dirtied meanwhile, so the next flush retries it
            for entry in batch:
                if entry.job.key in self._entries:
                    self._dirty.setdefault(entry.job.key, entry)
            self._deleted.update(k for k in deleted if k not in self._entries)
            raise

    async def refresh(self) -> None:
        """Take in rows other processes wrote since the last read."""
        if self._db is not None:
            since = self._watermark
            self._merge(await self._db.run(lambda c: self._read_since(c, since)))

    async def close(self) -> None:
        await cancel(self._flusher)
        self._flusher = None
        await self.flush()
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _flush_loop(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
                rounds += 1
                if rounds % REFRESH_EVERY == 0:
                    await self.refresh()
            except (sqlite3.Error, OSError):
                log.exception("feed store: write to %s failed; will retry", self.path)

    # -- in the writer's thread (inside its transaction) -------------------------

    def _read_since(self, conn: sqlite3.Connection, since: float | None) -> list[tuple]:
        """Rows written after `since` (all rows when None)."""
        sql = "SELECT key, data, first_seen, last_seen, updated FROM feed_jobs"
        rows = (conn.execute(sql).fetchall() if since is None else
                conn.execute(sql + " WHERE updated > ?", (since,)).fetchall())
        if rows:
            self._watermark = max(self._watermark, max(r[4] for r in rows))
        return rows

    def _write(self, conn: sqlite3.Connection, batch: list[Entry], deleted: list[str]) -> None:
        now = self._clock()
        conn.executemany(UPSERT, [
            (e.job.key, json.dumps(dataclasses.asdict(e.job)), e.first_seen,
             e.last_seen, now) for e in batch])
        conn.executemany("DELETE FROM feed_jobs WHERE key = ?", [(k,) for k in deleted])

    # -- on the loop ----------------------------------------------------------------

    def _merge(self, rows: list[tuple]) -> None:
        changed = False
        for key, data, first_seen, last_seen, _ in rows:
            if key in self._dirty or key in self._deleted:
                continue            # our own unwritten change is newer
            try:
                job = Job(**json.loads(data))
            except (TypeError, ValueError):
                continue            # a row from an incompatible version: ignore it
            old = self._entries.get(key)
            if old is None and len(self._entries) >= MAX_JOBS:
                continue
            entry = Entry(job, min(first_seen, old.first_seen) if old else first_seen,
                          max(last_seen, old.last_seen) if old else last_seen)
            if entry != old:
                self._entries[key] = entry
                changed = True
        if changed:
            self.version += 1
