"""Journeys in Redis: the `JourneyStore` interface, shared by every proxy host.

Same contract as `journeys.JourneyStore`: the request path calls `record(visit)`,
which only touches memory (a bounded write-behind buffer; repeated visits of one id
coalesce; an unchanged visitor seen within `recent_ttl` is skipped), and a
background task writes batches, here as one pipeline of merge scripts.

Keys (after the prefix): `journey:<id>` a hash (`first_seen`, `last_seen`, `fbc`,
`fbp`, and `v:<param>` / `t:<param>` per click id), and `click:<param>:<value>` a
sorted set of the ids that carried that click id, scored by when. Each journey is
merged on the server by one Lua script, with the rules of `Journey.merge` (per param
the newest capture wins), so hosts writing the same visitor never lose a click id.
With `retention_days`, every write renews the keys' TTL: Redis forgets journeys whose
cookies have expired, with no prune pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from cachetools import TTLCache

from proxy.attribution.clickids import ClickId
from proxy.attribution.journeys import Journey
from proxy.attribution.visit import Visit
from proxy.state_redis import KEY_PREFIX, connect

log = logging.getLogger(__name__)

FIND_CANDIDATES = 5      # carriers of a click id looked at, newest first, past expired ones

# KEYS: journey, click index keys...  ARGV: id ttl_ms first last fbc fbp n
#       [param value seen_at] * n, then one seen_at per click index key
_MERGE = r"""
local j = KEYS[1]
local cur = redis.call('HMGET', j, 'first_seen', 'last_seen', 'fbc', 'fbp')
local first, last, fbc, fbp = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if cur[2] then
  if tonumber(last) >= tonumber(cur[2]) then
    if fbc == '' then fbc = cur[3] or '' end
    if fbp == '' then fbp = cur[4] or '' end
  else
    if cur[3] then fbc = cur[3] end
    if cur[4] then fbp = cur[4] end
  end
  if tonumber(cur[1]) < tonumber(first) then first = cur[1] end
  if tonumber(cur[2]) > tonumber(last) then last = cur[2] end
end
redis.call('HSET', j, 'first_seen', first, 'last_seen', last)
if fbc ~= '' then redis.call('HSET', j, 'fbc', fbc) end
if fbp ~= '' then redis.call('HSET', j, 'fbp', fbp) end
local n = tonumber(ARGV[7])
for i = 8, 7 + 3 * n, 3 do
  local old = redis.call('HGET', j, 't:' .. ARGV[i])
  if not old or tonumber(ARGV[i + 2]) >= tonumber(old) then
    redis.call('HSET', j, 'v:' .. ARGV[i], ARGV[i + 1], 't:' .. ARGV[i], ARGV[i + 2])
  end
end
for k = 2, #KEYS do
  redis.call('ZADD', KEYS[k], 'GT', ARGV[7 + 3 * n + k - 1], ARGV[1])
  if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[k], ARGV[2]) end
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', j, ARGV[2]) end
return 1
"""


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


def _from_hash(vid: str, raw: dict[bytes, bytes]) -> Journey | None:
    if b"last_seen" not in raw:
        return None
    d = {k.decode(): v.decode() for k, v in raw.items()}
    clicks = {k[2:]: ClickId(v, float(d["t:" + k[2:]]))
              for k, v in d.items() if k.startswith("v:") and "t:" + k[2:] in d}
    return Journey(vid, clicks, float(d["first_seen"]), float(d["last_seen"]),
                   d.get("fbc"), d.get("fbp"))


class RedisJourneyStore:
    def __init__(self, url: str, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = 50_000, recent_ttl: float = 60.0,
                 retention_days: float | None = None, prefix: str = KEY_PREFIX,
                 client: aioredis.Redis | None = None) -> None:
        self.prefix = prefix
        self.redis = client if client is not None else connect(url)
        self._own_client = client is None
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._ttl_ms = int(retention_days * 86400_000) if retention_days else None
        self._pending: dict[str, _Pending] = {}
        self._recent: TTLCache[str, tuple[Any, ...]] = TTLCache(maxsize=100_000, ttl=recent_ttl)
        self._merge = self.redis.register_script(_MERGE)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0           # visits not recorded because the buffer was full
        self.failed_flushes = 0

    # -- request path (memory only), as in JourneyStore ------------------------------

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
        # No PING here: a Redis that is away must not stop the site being served;
        # the buffer holds visits until it answers, and readiness reports it.
        self._task = asyncio.create_task(self._loop(), name="journeys-flush-redis")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        finally:
            if self._own_client:
                await self.redis.aclose()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:       # Redis away: kept in the buffer, retried next turn
                log.exception("journey flush failed")

    # -- reads and writes --------------------------------------------------------------

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                for start in range(0, len(batch), self._batch_size):
                    await self._write(list(batch.values())[start:start + self._batch_size])
            except Exception:
                # Merging is idempotent: rewriting what did land is harmless.
                self.failed_flushes += 1
                for vid, entry in batch.items():
                    newer = self._pending.get(vid)
                    if newer is not None:
                        entry.add(newer.journey)
                        entry.seen.update(newer.seen)
                    self._pending[vid] = entry
                raise

    async def _write(self, entries: list[_Pending]) -> None:
        ttl = "" if self._ttl_ms is None else str(self._ttl_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                j = entry.journey
                clicks = [x for p, c in j.click_ids.items() for x in (p, c.value, repr(c.seen_at))]
                seen = list(entry.seen.items())
                await self._merge(
                    keys=[self._key(j.links_clicked_id),
                          *(self._click_key(p, v) for (p, v), _ in seen)],
                    args=[j.links_clicked_id, ttl, repr(j.first_seen), repr(j.last_seen),
                          j.fbc or "", j.fbp or "", len(j.click_ids), *clicks,
                          *(repr(t) for _, t in seen)],
                    client=pipe)
            await pipe.execute()

    async def get(self, links_clicked_id: str) -> Journey | None:
        raw: Any = await self.redis.hgetall(self._key(links_clicked_id))  # type: ignore[misc]
        return self._with_pending(links_clicked_id, _from_hash(links_clicked_id, raw))

    lookup = get      # the events API's name for it

    async def find_by_click(self, param: str, value: str) -> Journey | None:
        """The journey that most recently carried this click id."""
        best: tuple[float, str] | None = None
        for pending_id, entry in self._pending.items():
            seen_at = entry.seen.get((param, value))
            if seen_at is not None and (best is None or seen_at > best[0]):
                best = (seen_at, pending_id)
        if best is not None:
            return await self.get(best[1])
        ids: Any = await self.redis.zrevrange(self._click_key(param, value), 0,
                                              FIND_CANDIDATES - 1)
        for vid in ids:
            journey = await self.get(vid.decode())
            if journey is not None:          # else expired since: look at the next one
                return journey
        return None

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

    def _key(self, vid: str) -> str:
        return f"{self.prefix}journey:{vid}"

    def _click_key(self, param: str, value: str) -> str:
        return f"{self.prefix}click:{param}:{value}"
