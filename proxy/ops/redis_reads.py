"""The operators' reads from the Redis state (keys after the prefix): `ev:<event_id>`
(an event, its result and its rows), `events` and `vev:<visitor>` (event ids by
time), `funnel:<day>`, `sinkhours:<hour>`, `rulehits`, `rulelast`, `ruleevent`.

Each answer is one or two pipelines, whatever the size of the state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from proxy.conversions.funnel import parse_redis_field, redis_key
from proxy.conversions.outbox import as_text
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.ops.views import EventRecord, record_from

MAX_HOURS = 24 * 30


class RedisReads:
    def __init__(self, outbox: RedisOutbox) -> None:
        self.outbox = outbox
        self.redis = outbox.redis
        self.prefix = outbox.prefix

    async def now(self) -> float:
        """The clock the outbox marks hours by: Redis's own (`TIME`), or the one a test
        injected. This host's clock would miss the current hour when the two disagree."""
        if self.outbox.clock is not None:
            return self.outbox.clock()
        seconds, micros = await self.redis.time()
        return seconds + micros / 1e6

    async def events_of(self, visitor: str, limit: int) -> list[EventRecord]:
        ids: Any = await self.redis.zrevrange(f"{self.prefix}vev:{visitor}", 0, limit - 1)
        return await self._records(ids)

    async def recent_events(self, limit: int) -> list[EventRecord]:
        ids: Any = await self.redis.zrevrange(self.prefix + "events", 0, limit - 1)
        return await self._records(ids)

    async def _records(self, ids: Sequence[bytes]) -> list[EventRecord]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for eid in ids:
                pipe.hmget(self.prefix + "ev:" + as_text(eid), ["event", "result", "rows"])
            found = [f for f in await pipe.execute() if f[0] is not None]
        members = [int(m) for f in found for m in as_text(f[2] or b"").split(",") if m]
        rows = {r.id: r for r in await self.outbox.get_many(members) if r is not None}
        return [record_from(event, result,
                            [rows[int(m)] for m in as_text(mem or b"").split(",")
                             if m and int(m) in rows])
                for event, result, mem in found]

    async def funnel(self, by: str, since_day: str) -> list[tuple[str, str, str, int]]:
        first = dt.date.fromisoformat(since_day)
        today = dt.datetime.now(dt.UTC).date()
        days = [(first + dt.timedelta(days=i)).isoformat()
                for i in range(max((today - first).days + 1, 0))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.prefix + redis_key(day))
            found = await pipe.execute()
        out = []
        for day, cells in zip(days, found):
            for raw, n in cells.items():
                cell_by, key, step = parse_redis_field(as_text(raw))
                if cell_by == by:
                    out.append((day, key, step, int(n)))
        return out

    async def sink_hours(self, since_hour: int) -> list[tuple[str, int, int, int, int]]:
        now_hour = int(await self.now() // 3600) * 3600
        hours = list(range(max(since_hour, now_hour - MAX_HOURS * 3600), now_hour + 1, 3600))
        async with self.redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(f"{self.prefix}sinkhours:{hour}")
            found = await pipe.execute()
        out = []
        for hour, counts in zip(hours, found):
            per_sink: dict[str, dict[str, int]] = {}
            for raw, n in counts.items():
                sink, _, kind = as_text(raw).rpartition("|")
                per_sink.setdefault(sink, {})[kind] = int(n)
            for sink in sorted(per_sink):
                c = per_sink[sink]
                out.append((sink, hour, c.get("sent", 0), c.get("retried", 0), c.get("dead", 0)))
        return out

    async def rule_hits(self) -> dict[str, tuple[str, int, float]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in ("rulehits", "rulelast", "ruleevent"):
                pipe.hgetall(self.prefix + key)
            hits, last, event = await pipe.execute()
        return {as_text(rule): (as_text(event.get(rule, b"")), int(n),
                                float(last.get(rule, 0.0)))
                for rule, n in hits.items()}

    async def close(self) -> None:
        """The outbox owns the connection."""
