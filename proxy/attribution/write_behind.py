"""The journey write-behind buffer, shared by the SQLite and the Redis journey store.

Owns `WriteBehind` (`Journey` and `Pending` are `journey_rows`'), the part of a
journey store that the request path touches: `record(visit)` works in memory only. Repeated
visits of one id coalesce; an unchanged visitor seen within `recent_ttl` is skipped;
the buffer is bounded (`dropped` counts what did not fit); a background task flushes
it every `flush_interval`, or at once when `batch_size` visitors wait. A failed
flush keeps its batch for the next turn. Reads see the buffer merged over what is
stored. A store implements the storage side: `_write_batch`, `_load`, `_find_stored`.

What is recorded: every visit that carries click ids or comes back with a
`linksClickedId` cookie. A cookieless first hit without click ids (a crawler,
or a visitor whose id is not yet stored by their browser) is not: it would grow
the store by one journey per bot request and can never be attributed anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from itertools import islice

from proxy.attribution.journey_rows import Journey, Pending
from proxy.attribution.visit import Visit
from proxy.background import cancel, spawn

log = logging.getLogger(__name__)
# Journeys waiting for the next flush at most: ~1.5 KB each. A backlog past it (a
# flood of new click ids faster than the store takes them) is dropped and counted.
MAX_PENDING = 10_000
# Visitors remembered for the unchanged-visit skip: reached within a minute under
# load, so memory stays flat after warm-up.
RECENT_MAX = 20_000


class WriteBehind(ABC):
    """The buffer and its flush task; subclasses say how a batch is stored and read."""

    task_name = "journeys-flush"

    def __init__(self, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, recent_ttl: float = 60.0) -> None:
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: dict[str, Pending] = {}
        # The batch being written: still read until it is stored, so a Hire sent while a
        # flush is under way finds its visitor.
        self._flushing: dict[str, Pending] = {}
        # Visitor id -> (fingerprint, monotonic deadline). One ttl for all, so insertion
        # order is deadline order: the first entries are the oldest. (A plain dict: a
        # `TTLCache` lookup ran ~130 Python instructions on every returning visit.)
        self._recent: dict[str, tuple[int, float]] = {}
        self._recent_ttl = recent_ttl
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0           # visits not recorded because the buffer was full
        self.failed_flushes = 0

    # -- what a store provides ---------------------------------------------------------

    @abstractmethod
    async def _write_batch(self, entries: list[Pending]) -> None:
        """Store `entries`, merged with what is stored (other processes write too)."""

    @abstractmethod
    async def _load(self, links_clicked_id: str) -> Journey | None:
        """The stored journey of this id, without the buffer."""

    @abstractmethod
    async def _find_stored(self, param: str, value: str) -> Journey | None:
        """The journey (through `get`) that most recently carried this click id, by
        what is stored: none in the buffer carries it."""

    @abstractmethod
    async def _ids_stored(self, value: str, limit: int) -> list[str]:
        """Ids of stored journeys that carried this click-id value (any param),
        most recent first."""

    async def _open(self) -> None:
        """Before the flush task starts."""

    async def _close(self) -> None:
        """After the last flush."""

    async def _housekeep(self) -> None:
        """After each flush of the background task."""

    # -- request path (memory only) ------------------------------------------------

    def record(self, visit: Visit, now: float | None = None) -> None:
        if visit.new_visitor and not visit.click_ids:
            return
        vid = visit.links_clicked_id
        # A hash, not the tuple itself: the cache holds tens of thousands of these.
        fingerprint = hash((tuple(sorted((p, c.value) for p, c in visit.click_ids.items())),
                            visit.fbc, visit.fbp, visit.preview))
        clock = time.monotonic()
        seen = self._recent.get(vid)
        if seen is not None and seen[0] == fingerprint and seen[1] > clock:
            return
        now = time.time() if now is None else now
        first = min([now, *(c.seen_at for c in visit.click_ids.values())])
        journey = Journey(vid, dict(visit.click_ids), first, now, visit.fbc, visit.fbp,
                          visit.preview)
        pending = self._pending.get(vid)
        if pending is not None:
            pending.add(journey)
        elif len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        else:
            self._pending[vid] = Pending(journey, {
                (p, c.value): c.seen_at for p, c in journey.click_ids.items()})
        self._remember(vid, fingerprint, clock)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def _remember(self, vid: str, fingerprint: int, clock: float) -> None:
        recent = self._recent
        recent.pop(vid, None)               # to the end: its deadline is the latest
        if len(recent) >= RECENT_MAX:       # bounded: the oldest quarter goes
            for old in list(islice(recent, RECENT_MAX // 4)):
                del recent[old]
        recent[vid] = (fingerprint, clock + self._recent_ttl)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._open()
        self._task = spawn(self._loop(), self.task_name)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            await self.flush()
        finally:
            await self._close()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
                await self._housekeep()
            except Exception:       # a full disk or a Redis away: kept, retried next turn
                log.exception("journey flush failed")

    # -- reads and writes ------------------------------------------------------------

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            self._flushing = batch
            try:
                await self._write_batch(list(batch.values()))
            except Exception:
                self.failed_flushes += 1
                for vid, entry in batch.items():     # keep them for the next attempt
                    newer = self._pending.get(vid)
                    if newer is not None:
                        entry.add(newer.journey)
                        entry.seen.update(newer.seen)
                    self._pending[vid] = entry
                raise
            finally:
                self._flushing = {}

    async def get(self, links_clicked_id: str) -> Journey | None:
        return self._with_pending(links_clicked_id, await self._load(links_clicked_id))

    async def find_by_click(self, param: str, value: str) -> Journey | None:
        """The journey that most recently carried this click id."""
        best: tuple[float, str] | None = None
        for pending_id, entry in self._unstored():
            seen_at = entry.seen.get((param, value))
            if seen_at is not None and (best is None or seen_at > best[0]):
                best = (seen_at, pending_id)
        if best is not None:
            return await self.get(best[1])
        return await self._find_stored(param, value)

    async def ids_by_click_value(self, value: str, limit: int = 50) -> list[str]:
        """Journeys that carried this click-id value under any param, most recent
        first (the operators' search)."""
        found = sorted(((t, vid) for vid, entry in self._unstored()
                        for (_, v), t in entry.seen.items() if v == value), reverse=True)
        ids = list(dict.fromkeys(vid for _, vid in found))
        for vid in await self._ids_stored(value, limit):
            if vid not in ids:
                ids.append(vid)
        return ids[:limit]

    def _unstored(self) -> list[tuple[str, Pending]]:
        """Entries not yet stored: the batch being written, then the buffer."""
        return [*self._flushing.items(), *self._pending.items()]

    def _with_pending(self, vid: str, stored: Journey | None) -> Journey | None:
        for entry in (self._flushing.get(vid), self._pending.get(vid)):
            if entry is None:
                continue
            pending = entry.journey
            if stored is None:
                stored = Journey(vid, dict(pending.click_ids), pending.first_seen,
                                 pending.last_seen, pending.fbc, pending.fbp, pending.preview)
            else:
                stored.merge(pending)
        return stored
