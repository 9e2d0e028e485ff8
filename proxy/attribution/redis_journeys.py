"""Journeys in Redis: the `JourneyStore` interface, shared by every proxy host.

Same contract as `journeys.JourneyStore`, and the same write-behind buffer
(`write_behind.WriteBehind`): the request path calls `record(visit)`, which only
touches memory, and a background task writes batches, here as pipelines of merge
scripts.

Keys (after the prefix): `journey:<id>` a hash (`first_seen`, `last_seen`, `fbc`,
`fbp`, and `v:<param>` / `t:<param>` per click id), and `click:<param>:<value>` a
sorted set of the ids that carried that click id, scored by when (and
`clickv:<value>` the same by value alone, for the operators' search). Each journey is
merged on the server by one Lua script, with the rules of `Journey.merge` (per param
the newest capture wins), so hosts writing the same visitor never lose a click id.
With `retention_days`, every write renews the keys' TTL: Redis forgets journeys whose
cookies have expired, with no prune pass. The merge adds the funnel's click counters
(`funnel:<day>`, `conversions.funnel`) for journeys and params stored for the first time.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from proxy.attribution.clickids import ClickId
from proxy.attribution.write_behind import MAX_PENDING, Journey, Pending, WriteBehind
from proxy.conversions.funnel import CLICKS, KEEP_SECONDS, day_of, redis_field, redis_key
from proxy.state_redis import KEY_PREFIX, connect

FIND_CANDIDATES = 5      # carriers of a click id looked at, newest first, past expired ones

# KEYS: journey, then per click id carried since the last flush its `click:` key and
#       its `clickv:` key.
# ARGV: id ttl_ms first last fbc fbp preview n [param value seen_at day] * n,
#       then one seen_at per carried click id, then funnel_prefix clicks_field
#       direct_day funnel_ttl_s
_MERGE = r"""
local j = KEYS[1]
local cur = redis.call('HMGET', j, 'first_seen', 'last_seen', 'fbc', 'fbp', 'preview')
local first, last, fbc, fbp = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local preview = ARGV[7] == '1' or cur[5] == '1'
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
if preview then redis.call('HSET', j, 'preview', '1') end
local n = tonumber(ARGV[8])
local tail = 9 + 4 * n
local carried = (#KEYS - 1) / 2
local fp, field, ttl = ARGV[tail + carried], ARGV[tail + carried + 1], ARGV[tail + carried + 3]
local function count(day, key)
  if not preview then
    redis.call('HINCRBY', fp .. day, field .. key, 1)
    redis.call('EXPIRE', fp .. day, ttl)
  end
end
for i = 9, 8 + 4 * n, 4 do
  local old = redis.call('HGET', j, 't:' .. ARGV[i])
  if not old then count(ARGV[i + 3], ARGV[i]) end
  if not old or tonumber(ARGV[i + 2]) >= tonumber(old) then
    redis.call('HSET', j, 'v:' .. ARGV[i], ARGV[i + 1], 't:' .. ARGV[i], ARGV[i + 2])
  end
end
if not cur[2] and n == 0 then count(ARGV[tail + carried + 2], 'direct') end
for k = 1, carried do
  for _, key in ipairs({KEYS[1 + k], KEYS[1 + carried + k]}) do
    redis.call('ZADD', key, 'GT', ARGV[tail + k - 1], ARGV[1])
    if ARGV[2] ~= '' then redis.call('PEXPIRE', key, ARGV[2]) end
  end
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', j, ARGV[2]) end
return 1
"""


def _from_hash(vid: str, raw: dict[bytes, bytes]) -> Journey | None:
    if b"last_seen" not in raw:
        return None
    d = {k.decode(): v.decode() for k, v in raw.items()}
    clicks = {k[2:]: ClickId(v, float(d["t:" + k[2:]]))
              for k, v in d.items() if k.startswith("v:") and "t:" + k[2:] in d}
    return Journey(vid, clicks, float(d["first_seen"]), float(d["last_seen"]),
                   d.get("fbc"), d.get("fbp"), d.get("preview") == "1")


class RedisJourneyStore(WriteBehind):
    """`WriteBehind` on Redis, merged on the server by `_MERGE`."""

    task_name = "journeys-flush-redis"

    def __init__(self, url: str, *, flush_interval: float = 1.0, batch_size: int = 500,
                 max_pending: int = MAX_PENDING, recent_ttl: float = 60.0,
                 retention_days: float | None = None, prefix: str = KEY_PREFIX,
                 client: aioredis.Redis | None = None) -> None:
        super().__init__(flush_interval=flush_interval, batch_size=batch_size,
                         max_pending=max_pending, recent_ttl=recent_ttl)
        self.prefix = prefix
        self.redis = client if client is not None else connect(url)
        self._own_client = client is None
        self._ttl_ms = int(retention_days * 86400_000) if retention_days else None
        self._merge = self.redis.register_script(_MERGE)

    # No `_open` PING: a Redis that is away must not stop the site being served; the
    # buffer holds visits until it answers, and readiness reports it.

    async def _close(self) -> None:
        if self._own_client:
            await self.redis.aclose()

    async def _write_batch(self, entries: list[Pending]) -> None:
        # Merging is idempotent: after a failure, rewriting what did land is harmless.
        for start in range(0, len(entries), self._batch_size):
            await self._write(entries[start:start + self._batch_size])

    async def _write(self, entries: list[Pending]) -> None:
        ttl = "" if self._ttl_ms is None else str(self._ttl_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                j = entry.journey
                clicks = [x for p, c in j.click_ids.items()
                          for x in (p, c.value, repr(c.seen_at), day_of(c.seen_at))]
                seen = list(entry.seen.items())
                await self._merge(
                    keys=[self._key(j.links_clicked_id),
                          *(self._click_key(p, v) for (p, v), _ in seen),
                          *(self._value_key(v) for (_, v), _ in seen)],
                    args=[j.links_clicked_id, ttl, repr(j.first_seen), repr(j.last_seen),
                          j.fbc or "", j.fbp or "", "1" if j.preview else "0",
                          len(j.click_ids), *clicks, *(repr(t) for _, t in seen),
                          self.prefix + redis_key(""), redis_field("source", "", CLICKS),
                          day_of(j.first_seen), str(KEEP_SECONDS)],
                    client=pipe)
            await pipe.execute()

    async def _load(self, links_clicked_id: str) -> Journey | None:
        raw: Any = await self.redis.hgetall(self._key(links_clicked_id))  # type: ignore[misc]
        return _from_hash(links_clicked_id, raw)

    lookup = WriteBehind.get      # the events API's name for it

    async def _find_stored(self, param: str, value: str) -> Journey | None:
        ids: Any = await self.redis.zrevrange(self._click_key(param, value), 0,
                                              FIND_CANDIDATES - 1)
        for vid in ids:
            journey = await self.get(vid.decode())
            if journey is not None:          # else expired since: look at the next one
                return journey
        return None

    async def _ids_stored(self, value: str, limit: int) -> list[str]:
        ids: Any = await self.redis.zrevrange(self._value_key(value), 0, limit - 1)
        return [i.decode() for i in ids]

    def _key(self, vid: str) -> str:
        return f"{self.prefix}journey:{vid}"

    def _click_key(self, param: str, value: str) -> str:
        return f"{self.prefix}click:{param}:{value}"

    def _value_key(self, value: str) -> str:
        return f"{self.prefix}clickv:{value}"
