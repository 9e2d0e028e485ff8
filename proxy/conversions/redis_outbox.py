"""The outbox in Redis: one queue shared by the proxy hosts (`state = "redis://…"`).

Keys (after the prefix): `row:<id>` a hash per (event, sink) delivery; `due:<sink>`
(pending and retry rows by next attempt), `leased:<sink>` (by lease expiry) and
`expiry:<sink>` (open rows by their 7-day limit) sorted sets; `open`, `dead` (by id)
and `sent` (by time) across sinks; `counts:<sink>` rows per state; `dedupe:<visitor,
event, job>` (expires with the window) and `event:<event_id>` (the first submit's
result). Row ids are zero-padded members, so equal scores still sort by id.
For the operators, in the same scripts: `ev:<event_id>` (the event, its result and
its rows), `events` and `vev:<visitor>` (event ids by time), `rulehits`, `rulelast`,
`ruleevent` (per rule), `sinkhours:<hour>` (marks per sink) and `funnel:<day>`.

Every change is one Lua script (`redis_scripts`), atomic on the server: submit
(event-id idempotency, dedupe, rows, wake-up), lease (give up rows past 7 days, take
due rows and rows whose lease expired: a host that died loses its claim), marks (only
the lease holder),
release, re-queue and purge. Scripts move rows by `states.TRANSITIONS`, the same
table the SQLite outbox follows. Time is Redis's own clock (`TIME`), so hosts with
skewed clocks agree on leases; tests inject a clock instead.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.background import cancel, spawn
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.funnel import day_of, event_cells, redis_field
from proxy.conversions.outbox import (
    EVENT_ID_KEEP,
    LAST_BODY,
    MAX_EVENT_AGE,
    SENT_KEEP,
    OutboxBase,
    OutboxRow,
    SubmitResult,
    as_text,
    decode_row,
)
from proxy.conversions.redis_scripts import (
    FIELDS,
    LEASE,
    MOVE,
    OLDEST,
    PURGE,
    RELEASE,
    REQUEUE,
    SUBMIT,
)
from proxy.conversions.routing import Consent, route
from proxy.conversions.states import Action, Outcome, RowState
from proxy.metrics import Metrics
from proxy.state_redis import KEY_PREFIX, connect

log = logging.getLogger(__name__)

WAKE_CHANNEL = "outbox:wake"     # pub/sub: a submit on one host wakes the others
RESUBSCRIBE_DELAY = 1.0          # seconds before listening again after Redis went away


def _member(row_id: int) -> str:
    return f"{row_id:015d}"


def _code(code: int | None) -> str:
    return "" if code is None else str(code)


class RedisOutbox(OutboxBase):
    """`Outbox` on Redis. `clock=None` uses Redis's clock; tests inject their own.
    A subscriber hears local submits at once and other hosts' over pub/sub."""

    def __init__(self, url: str, *, metrics: Metrics | None = None,
                 clock: Callable[[], float] | None = None, prefix: str = KEY_PREFIX,
                 client: aioredis.Redis | None = None, wake: bool = True) -> None:
        super().__init__(metrics)
        self.url = url
        self.clock = clock
        self.prefix = prefix
        self.redis = client if client is not None else connect(url)
        self._own_client = client is None
        self._channel = prefix + WAKE_CHANNEL if wake else ""
        self._origin = secrets.token_hex(8)
        self._listening: asyncio.Task[None] | None = None
        s = self.redis.register_script
        self._submit, self._lease, self._move = s(SUBMIT), s(LEASE), s(MOVE)
        self._release, self._requeue, self._purge = s(RELEASE), s(REQUEUE), s(PURGE)
        self._oldest = s(OLDEST)

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    # -- the request path ---------------------------------------------------------

    async def submit(self, event: Event, sinks: Sequence[Sink], *,
                     consent: Consent) -> SubmitResult:
        plan = route(event, sinks, consent=consent)
        fresh = SubmitResult(event.event_id, plan)
        deduped = SubmitResult(event.event_id, {s: Outcome.DEDUPED for s in plan})
        dedupe = (orjson.dumps([event.links_clicked_id, event.name, event.job_id or ""])
                  if event.links_clicked_id else b"")
        # The funnel's day is this host's: Redis's clock is read inside the script.
        at = self.clock() if self.clock is not None else time.time()
        cells = event_cells(event, at)
        new, data = await self._submit(args=[
            self.prefix, self._now(), event.event_id, dedupe, repr(event.dedupe_hours * 3600.0),
            event.to_json(), repr(event.event_time), repr(MAX_EVENT_AGE),
            int(EVENT_ID_KEEP * 1000), fresh.to_json(), deduped.to_json(), self._channel,
            self._origin, event.links_clicked_id or "", event.rule or "", event.name,
            day_of(at), len(cells), *(redis_field(by, key, step) for by, _, key, step in cells),
            *fresh.queued])
        return self._submitted(SubmitResult.from_json(data, duplicate=not new))

    def _listen(self) -> None:
        if self._channel and self._listeners and self._listening is None:
            self._listening = spawn(self._wake_loop(), "outbox-redis-wake")

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
        rows = [decode_row(r) for r in out[1:]]
        self._expired(sink, int(out[0]))
        return sorted(rows, key=lambda r: r.id)

    async def mark_sent(self, ids: Sequence[int], owner: str, code: int | None = None) -> int:
        return await self._mark(ids, owner, Action.SEND,
                                {"last_code": _code(code), "last_body": ""})

    async def mark_retry(self, ids: Sequence[int], owner: str, delay: float,
                         error: str, code: int | None = None, body: str = "") -> int:
        return await self._mark(ids, owner, Action.RETRY,
                                {"last_error": error, "last_code": _code(code),
                                 "last_body": body[:LAST_BODY]}, delay)

    async def mark_dead(self, ids: Sequence[int], owner: str, error: str,
                        body: str = "", code: int | None = None) -> int:
        return await self._mark(ids, owner, Action.GIVE_UP,
                                {"last_error": error, "dead_body": body,
                                 "last_code": _code(code), "last_body": body[:LAST_BODY]})

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

    async def oldest_pending_age(self) -> float:
        return float(await self._oldest(args=[self.prefix, self._now()]))

    async def counts(self) -> dict[str, dict[str, int]]:
        found_sinks = await self.redis.smembers(self.prefix + "sinks")  # type: ignore[misc]
        sinks = sorted(as_text(s) for s in found_sinks)
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

    async def get_many(self, row_ids: Sequence[int]) -> list[OutboxRow | None]:
        return await self._rows([_member(i) for i in row_ids])

    async def _rows(self, members: Sequence[bytes | str]) -> list[OutboxRow | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                key = self.prefix + "row:" + as_text(m)
                pipe.hmget(key, list(FIELDS))
            found = await pipe.execute()
        return [decode_row([m, *v]) if v[0] is not None else None
                for m, v in zip(members, found)]

    async def retry_dead(self, sink: str | None = None, row_id: int | None = None) -> int:
        return int(await self._requeue(args=[
            self.prefix, self._now(), sink or "", "" if row_id is None else _member(row_id)]))

    async def purge(self) -> None:
        await self._purge(args=[self.prefix, self._now(), repr(SENT_KEEP), repr(EVENT_ID_KEEP)])

    async def close(self) -> None:
        await cancel(self._listening)
        self._listening = None
        if self._own_client:
            await self.redis.aclose()
