"""The outbox in Redis: one queue shared by the proxy hosts (`state = "redis://…"`).

Keys (after the prefix): `row:<id>` a hash per (event, sink) delivery; `due:<sink>`
(pending and retry rows by next attempt), `leased:<sink>` (by lease expiry) and
`expiry:<sink>` (open rows by their 7-day limit) sorted sets; `open`, `dead` (by id)
and `sent` (by time) across sinks; `counts:<sink>` rows per state; `dedupe:<visitor,
event, job>` (expires with the window) and `event:<event_id>` (the first submit's
result). Row ids are zero-padded members, so equal scores still sort by id.

Every change is one Lua script, atomic on the server: submit (event-id idempotency,
dedupe, rows, wake-up), lease (give up rows past 7 days, take due rows and rows whose
lease expired: a host that died loses its claim), marks (only the lease holder),
release, re-queue and purge. Scripts move rows by `states.TRANSITIONS`, the same
table the SQLite outbox follows. Time is Redis's own clock (`TIME`), so hosts with
skewed clocks agree on leases; tests inject a clock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.outbox import (
    EVENT_ID_KEEP,
    MAX_EVENT_AGE,
    SENT_KEEP,
    OutboxRow,
    SubmitListener,
    SubmitResult,
)
from proxy.conversions.routing import route
from proxy.conversions.states import OPEN_STATES, TRANSITIONS, Action, Outcome, RowState
from proxy.metrics import Metrics
from proxy.state_redis import KEY_PREFIX, connect

log = logging.getLogger(__name__)

WAKE_CHANNEL = "outbox:wake"     # pub/sub: a submit on one host wakes the others
RESUBSCRIBE_DELAY = 1.0          # seconds before listening again after Redis went away
_FIELDS = ("sink", "event", "state", "attempts", "next_attempt_at", "created_at",
           "lease_owner", "lease_expires_at", "last_error", "dead_body")
_S = RowState
# Which index a state's rows sit in, and the field that scores them there.
_INDEX = {_S.PENDING: ("due", "next_attempt_at"), _S.RETRY: ("due", "next_attempt_at"),
          _S.LEASED: ("leased", "lease_expires_at"), _S.SENT: ("sent", "updated_at"),
          _S.DEAD: ("dead", "")}


def _lua_set(states: frozenset[RowState]) -> str:
    return "{" + ",".join(f"{s.value}=true" for s in sorted(states)) + "}"


_TABLES = "\n".join([
    "local SRC, TGT = {}, {}",
    *(f"SRC.{a.value} = {_lua_set(src)}; TGT.{a.value} = '{tgt.value}'"
      for a, (src, tgt) in TRANSITIONS.items()),
    f"local OPEN = {_lua_set(OPEN_STATES)}",
    "local INDEX = {" + ",".join(f"{s.value}={{'{k}','{f}'}}" for s, (k, f) in _INDEX.items())
    + "}",
])

_PRELUDE = _TABLES + r"""
local P = ARGV[1]
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function rk(m) return P .. 'row:' .. m end
local function ik(state, sink)
  local kind = INDEX[state][1]
  if kind == 'due' or kind == 'leased' then return P .. kind .. ':' .. sink end
  return P .. kind
end
-- Move row m of sink from state old (nil: a new row) to new; the hash is already updated.
local function place(m, sink, old, new)
  if old then
    redis.call('ZREM', ik(old, sink), m)
    redis.call('HINCRBY', P .. 'counts:' .. sink, old, -1)
  end
  local field = INDEX[new][2]
  local score = tonumber(m)
  if field ~= '' then score = tonumber(redis.call('HGET', rk(m), field)) end
  redis.call('ZADD', ik(new, sink), score, m)
  redis.call('HINCRBY', P .. 'counts:' .. sink, new, 1)
  local was_open = old and OPEN[old]
  if OPEN[new] and not was_open then
    redis.call('ZADD', P .. 'open', tonumber(m), m)
    redis.call('ZADD', P .. 'expiry:' .. sink, redis.call('HGET', rk(m), 'expires_at'), m)
  elseif was_open and not OPEN[new] then
    redis.call('ZREM', P .. 'open', m)
    redis.call('ZREM', P .. 'expiry:' .. sink, m)
  end
end
"""

_FIELD_LIST = ",".join(f"'{f}'" for f in _FIELDS)

# ARGV: P now event_id dedupe_key window event_json event_time max_age keep_ms
#       result deduped_result channel origin sink...
_SUBMIT = _PRELUDE + r"""
local ekey = P .. 'event:' .. ARGV[3]
local seen = redis.call('GET', ekey)
if seen then return {0, seen} end
local result, queued = ARGV[10], {}
for i = 14, #ARGV do queued[#queued + 1] = ARGV[i] end
if ARGV[4] ~= '' then
  local dkey = P .. 'dedupe:' .. ARGV[4]
  if tonumber(redis.call('GET', dkey) or '0') > now then result = ARGV[11]; queued = {} end
  if #queued > 0 then   -- only a conversion that went somewhere counts as fired
    local window = tonumber(ARGV[5])
    redis.call('SET', dkey, now + window, 'PX', math.max(1, math.ceil(window * 1000)))
  end
end
local expires = math.min(tonumber(ARGV[7]), now) + tonumber(ARGV[8])
for _, sink in ipairs(queued) do
  local m = string.format('%015d', redis.call('INCR', P .. 'seq'))
  redis.call('HSET', rk(m), 'sink', sink, 'event_id', ARGV[3], 'event', ARGV[6],
    'state', 'pending', 'attempts', 0, 'next_attempt_at', now, 'created_at', now,
    'expires_at', expires, 'updated_at', now)
  redis.call('SADD', P .. 'sinks', sink)
  place(m, sink, nil, 'pending')
end
redis.call('SET', ekey, result, 'PX', ARGV[9])
if #queued > 0 and ARGV[12] ~= '' then
  redis.call('PUBLISH', ARGV[12], ARGV[13] .. '\n' .. table.concat(queued, '\n'))
end
return {1, result}
"""

# ARGV: P now sink owner limit lease_seconds
_LEASE = _PRELUDE + r"""
local sink, owner, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local expired = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'expiry:' .. sink, '-inf', now)) do
  local st = redis.call('HGET', rk(m), 'state')
  if st and SRC.expire[st] then
    redis.call('HSET', rk(m), 'state', TGT.expire, 'last_error', 'expired', 'updated_at', now)
    redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
    place(m, sink, st, TGT.expire)
    expired = expired + 1
  end
end
local cands = {}
local due = redis.call('ZRANGEBYSCORE', P .. 'due:' .. sink, '-inf', now, 'WITHSCORES',
                       'LIMIT', 0, limit)
for i = 1, #due, 2 do cands[#cands + 1] = {due[i], tonumber(due[i + 1]), 'lease'} end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leased:' .. sink, '-inf', now,
                              'LIMIT', 0, limit)) do
  cands[#cands + 1] = {m, tonumber(redis.call('HGET', rk(m), 'next_attempt_at')), 'reclaim'}
end
table.sort(cands, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1] end)
local out = {expired}
for _, c in ipairs(cands) do
  if #out > limit then break end
  local m, action = c[1], c[3]
  local st = redis.call('HGET', rk(m), 'state')
  if st and SRC[action][st] then
    redis.call('HSET', rk(m), 'state', TGT[action], 'lease_owner', owner,
               'lease_expires_at', now + tonumber(ARGV[6]), 'updated_at', now)
    redis.call('HINCRBY', rk(m), 'attempts', 1)
    place(m, sink, st, TGT[action])
    local row = redis.call('HMGET', rk(m), """ + _FIELD_LIST + r""")
    table.insert(row, 1, m)
    out[#out + 1] = row
  end
end
return out
"""

# ARGV: P now action owner delay n_pairs [field value]... member...
_MOVE = _PRELUDE + r"""
local action, owner = ARGV[3], ARGV[4]
local n = tonumber(ARGV[6])
local changed = 0
for i = 7 + 2 * n, #ARGV do
  local m = ARGV[i]
  local row = redis.call('HMGET', rk(m), 'state', 'lease_owner', 'sink')
  if row[1] and row[2] == owner and SRC[action][row[1]] then
    redis.call('HSET', rk(m), 'state', TGT[action], 'updated_at', now)
    redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
    for j = 7, 6 + 2 * n, 2 do redis.call('HSET', rk(m), ARGV[j], ARGV[j + 1]) end
    if ARGV[5] ~= '' then
      redis.call('HSET', rk(m), 'next_attempt_at', now + tonumber(ARGV[5])) end
    place(m, row[3], row[1], TGT[action])
    changed = changed + 1
  end
end
return changed
"""

# ARGV: P now owner
_RELEASE = _PRELUDE + r"""
local changed = 0
for _, sink in ipairs(redis.call('SMEMBERS', P .. 'sinks')) do
  for _, m in ipairs(redis.call('ZRANGE', P .. 'leased:' .. sink, 0, -1)) do
    local row = redis.call('HMGET', rk(m), 'state', 'lease_owner', 'attempts')
    if row[2] == ARGV[3] and SRC.release[row[1]] then
      redis.call('HSET', rk(m), 'state', TGT.release, 'next_attempt_at', now, 'updated_at', now,
                 'attempts', math.max(tonumber(row[3]) - 1, 0))
      redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
      place(m, sink, row[1], TGT.release)
      changed = changed + 1
    end
  end
end
return changed
"""

# ARGV: P now sink-or-empty
_REQUEUE = _PRELUDE + r"""
local changed = 0
for _, m in ipairs(redis.call('ZRANGE', P .. 'dead', 0, -1)) do
  local row = redis.call('HMGET', rk(m), 'state', 'sink', 'expires_at')
  if SRC.requeue[row[1]] and tonumber(row[3]) > now and (ARGV[3] == '' or ARGV[3] == row[2]) then
    redis.call('HSET', rk(m), 'state', TGT.requeue, 'attempts', 0, 'next_attempt_at', now,
               'updated_at', now)
    redis.call('HDEL', rk(m), 'dead_body')
    place(m, row[2], row[1], TGT.requeue)
    changed = changed + 1
  end
end
return changed
"""

# ARGV: P now sent_keep. Dedupe keys and event ids expire by themselves (PX).
_PURGE = _PRELUDE + r"""
local old = redis.call('ZRANGEBYSCORE', P .. 'sent', '-inf', now - tonumber(ARGV[3]))
for _, m in ipairs(old) do
  local sink = redis.call('HGET', rk(m), 'sink')
  if sink then redis.call('HINCRBY', P .. 'counts:' .. sink, 'sent', -1) end
  redis.call('DEL', rk(m))
  redis.call('ZREM', P .. 'sent', m)
end
return #old
"""


def _member(row_id: int) -> str:
    return f"{row_id:015d}"


def _str(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _text(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


def _row(member: bytes | str, values: Sequence[Any]) -> OutboxRow:
    d = dict(zip(_FIELDS, values))
    owner_expiry = d["lease_expires_at"]
    return OutboxRow(
        id=int(member), sink=d["sink"].decode(), event=Event.from_json(d["event"]),
        state=RowState(d["state"].decode()), attempts=int(d["attempts"]),
        next_attempt_at=float(d["next_attempt_at"]), created_at=float(d["created_at"]),
        lease_owner=_text(d["lease_owner"]),
        lease_expires_at=float(owner_expiry) if owner_expiry is not None else None,
        last_error=_text(d["last_error"]), dead_body=_text(d["dead_body"]))


class RedisOutbox:
    """`Outbox` on Redis. `clock=None` uses Redis's clock; tests inject their own."""

    def __init__(self, url: str, *, metrics: Metrics | None = None,
                 clock: Callable[[], float] | None = None, prefix: str = KEY_PREFIX,
                 client: aioredis.Redis | None = None, wake: bool = True) -> None:
        self.url = url
        self.metrics = metrics
        self.clock = clock
        self.prefix = prefix
        self.redis = client if client is not None else connect(url)
        self._own_client = client is None
        self._channel = prefix + WAKE_CHANNEL if wake else ""
        self._origin = secrets.token_hex(8)
        self._listeners: list[SubmitListener] = []
        self._listening: asyncio.Task[None] | None = None
        s = self.redis.register_script
        self._submit, self._lease, self._move = s(_SUBMIT), s(_LEASE), s(_MOVE)
        self._release, self._requeue, self._purge = s(_RELEASE), s(_REQUEUE), s(_PURGE)

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    # -- the request path ---------------------------------------------------------

    async def submit(self, event: Event, sinks: Sequence[Sink], *,
                     consent: bool) -> SubmitResult:
        plan = route(event, sinks, consent=consent)
        fresh = SubmitResult(event.event_id, plan)
        deduped = SubmitResult(event.event_id, {s: Outcome.DEDUPED for s in plan})
        dedupe = (orjson.dumps([event.links_clicked_id, event.name, event.job_id or ""])
                  if event.links_clicked_id else b"")
        new, data = await self._submit(args=[
            self.prefix, self._now(), event.event_id, dedupe, repr(event.dedupe_hours * 3600.0),
            event.to_json(), repr(event.event_time), repr(MAX_EVENT_AGE),
            int(EVENT_ID_KEEP * 1000), fresh.to_json(), deduped.to_json(), self._channel,
            self._origin, *fresh.queued])
        result = SubmitResult.from_json(data, duplicate=not new)
        if new:
            if self.metrics is not None:
                for sink, outcome in result.outcomes.items():
                    self.metrics.conversions.labels(sink, outcome.value).inc()
            if result.queued:
                for listener in self._listeners:
                    listener(result.queued)
        return result

    def subscribe(self, listener: SubmitListener) -> None:
        """Local submits call `listener` at once; other hosts' reach it over pub/sub."""
        self._listeners.append(listener)

    def _listen(self) -> None:
        if self._channel and self._listeners and self._listening is None:
            self._listening = asyncio.create_task(self._wake_loop(), name="outbox-redis-wake")

    async def _wake_loop(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as ps:
                    await ps.subscribe(self._channel)
                    async for msg in ps.listen():
                        origin, *names = msg["data"].decode().split("\n")
                        if origin != self._origin:
                            for listener in self._listeners:
                                listener(names)
            except asyncio.CancelledError:
                raise
            except Exception:                # Redis away: polling still delivers meanwhile
                log.warning("outbox wake-up subscription lost; retrying", exc_info=True)
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    # -- delivery -----------------------------------------------------------------

    async def lease(self, sink: str, owner: str, limit: int,
                    lease_seconds: float) -> list[OutboxRow]:
        self._listen()
        if limit <= 0:
            return []
        out = await self._lease(args=[self.prefix, self._now(), sink, owner, int(limit),
                                      repr(float(lease_seconds))])
        expired, rows = int(out[0]), [_row(r[0], r[1:]) for r in out[1:]]
        if expired and self.metrics is not None:
            self.metrics.conversions.labels(sink, "dead").inc(expired)
        return sorted(rows, key=lambda r: r.id)

    async def mark_sent(self, ids: Sequence[int], owner: str) -> int:
        return await self._mark(ids, owner, Action.SEND, {})

    async def mark_retry(self, ids: Sequence[int], owner: str, delay: float,
                         error: str) -> int:
        return await self._mark(ids, owner, Action.RETRY, {"last_error": error}, delay)

    async def mark_dead(self, ids: Sequence[int], owner: str, error: str,
                        body: str = "") -> int:
        return await self._mark(ids, owner, Action.GIVE_UP,
                                {"last_error": error, "dead_body": body})

    async def _mark(self, ids: Sequence[int], owner: str, action: Action,
                    values: dict[str, str], delay: float | None = None) -> int:
        """Only the lease holder records an outcome: a reclaimed row is not its any more."""
        if not ids:
            return 0
        pairs = [x for kv in values.items() for x in kv]
        return int(await self._move(args=[
            self.prefix, self._now(), action.value, owner,
            "" if delay is None else repr(float(delay)), len(values), *pairs,
            *map(_member, ids)]))

    async def release(self, owner: str) -> int:
        return int(await self._release(args=[self.prefix, self._now(), owner]))

    # -- inspection and housekeeping ------------------------------------------------

    async def pending_count(self) -> int:
        return int(await self.redis.zcard(self.prefix + "open"))

    async def counts(self) -> dict[str, dict[str, int]]:
        found_sinks = await self.redis.smembers(self.prefix + "sinks")  # type: ignore[misc]
        sinks = sorted(_str(s) for s in found_sinks)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sink in sinks:
                pipe.hgetall(f"{self.prefix}counts:{sink}")
            found = await pipe.execute()
        out: dict[str, dict[str, int]] = {}
        for sink, raw in zip(sinks, found):
            states = {s.value: 0 for s in RowState}
            states.update({k.decode(): int(v) for k, v in raw.items()})
            if any(states.values()):
                out[sink] = states
        return out

    async def list_rows(self, *, dead: bool = False, limit: int = 100) -> list[OutboxRow]:
        members: Any = await self.redis.zrange(
            self.prefix + ("dead" if dead else "open"), 0, limit - 1)
        return [r for r in await self._rows(members) if r is not None]

    async def get(self, row_id: int) -> OutboxRow | None:
        (row,) = await self._rows([_member(row_id)])
        return row

    async def _rows(self, members: Sequence[bytes | str]) -> list[OutboxRow | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                key = self.prefix + "row:" + _str(m)
                pipe.hmget(key, list(_FIELDS))
            found = await pipe.execute()
        return [_row(m, v) if v[0] is not None else None for m, v in zip(members, found)]

    async def retry_dead(self, sink: str | None = None) -> int:
        return int(await self._requeue(args=[self.prefix, self._now(), sink or ""]))

    async def purge(self) -> None:
        await self._purge(args=[self.prefix, self._now(), repr(SENT_KEEP)])

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening
            self._listening = None
        if self._own_client:
            await self.redis.aclose()
