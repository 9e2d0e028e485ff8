"""The operators' JSON API on the admin listener (contract: SPEC section 7).

    GET  /api/journeys/{linksClickedId}   a visitor: click ids, events, deliveries
    GET  /api/journeys?click=VALUE        visitors that carried a click-id value
    GET  /api/events?limit=N              the latest events, newest first
    GET  /api/funnel?days=N&by=source|job daily counts (conversions.funnel)
    GET  /api/sinks?hours=N               deliveries per sink and hour
    GET  /api/dead?limit=N                dead letters
    POST /api/outbox/{id}/retry           re-queue one dead letter
    GET  /api/rules                       hits and last firing per rule
    GET  /api/stream                      the live feed (endpoints/ops_stream.py)

Reads go through `ops.reads` (the same answers from SQLite and Redis) and are shaped
by `ops.views`. A path or query that cannot name anything is 400 or 404, never
500. The admin token guards all of it (`endpoints/admin.py`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import hdrs, web

from proxy.attribution.cookies import VISITOR_ID
from proxy.conversions import funnel
from proxy.conversions.outbox import hour_of
from proxy.conversions.states import RowState
from proxy.endpoint_routes import below
from proxy.endpoints.ops_stream import stream
from proxy.ops.reads import OpsReads
from proxy.ops.views import dead_view, event_view, stream_delivery

if TYPE_CHECKING:
    from proxy.edge import Edge

JOURNEY_EVENTS = 200
MAX_SEARCH = 50
MAX_CLICK_VALUE = 512
ROW_ID = re.compile(r"[0-9]{1,15}")
Handler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]


class BadQuery(ValueError):
    pass


def answer(data: Any, code: int = 200) -> web.Response:
    return web.Response(status=code, body=orjson.dumps(data), content_type="application/json",
                        headers={hdrs.CACHE_CONTROL: "no-store"})


def problem(code: int, why: str, **extra: Any) -> web.Response:
    return answer({"error": why, **extra}, code)


def number(request: web.BaseRequest, name: str, default: int, most: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise BadQuery(f"{name} must be a whole number from 1 to {most}")
    return min(int(raw), most)


class OpsApi:
    def __init__(self, edge: Edge, reads: OpsReads) -> None:
        self.edge = edge
        self.reads = reads

    def mount(self) -> None:
        r = self.edge.admin
        r.mount("/api/journeys/", self._guard(self.journey))
        r.add("GET", "/api/journeys", self._guard(self.journeys))
        r.add("GET", "/api/events", self._guard(self.events))
        r.add("GET", "/api/funnel", self._guard(self.funnel))
        r.add("GET", "/api/sinks", self._guard(self.sinks))
        r.add("GET", "/api/dead", self._guard(self.dead))
        r.mount("/api/outbox/", self._guard(self.retry))
        r.add("GET", "/api/rules", self._guard(self.rules))
        r.add("GET", "/api/stream", lambda request, _t: stream(self.edge, request))

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.BaseRequest, target: str) -> web.StreamResponse:
            try:
                return await handler(request, target)
            except BadQuery as e:
                return problem(400, str(e))
        return guarded

    def _sub(self, target: str) -> str:
        return below(self.edge.runtime.prefix, target)

    async def journey(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return problem(405, "method not allowed")
        vid = self._sub(target).removeprefix("/api/journeys/")
        if not VISITOR_ID.fullmatch(vid):
            return problem(404, "no such visitor")
        journey = await self.edge.journeys.get(vid)
        records = await self.reads.events_of(vid, JOURNEY_EVENTS)
        if journey is None and not records:
            return problem(404, "no such visitor")
        events = [event_view(r) for r in records]
        if journey is not None:
            clicks = {p: c.value for p, c in sorted(journey.click_ids.items())}
            first, preview = journey.first_seen, journey.preview
        else:       # forgotten (cookie expired) while its events are still kept
            clicks = dict(records[-1].event.click_ids)
            first, preview = min(r.event.event_time for r in records), False
        return answer({"linksClickedId": vid, "first_seen": first,
                       "preview": preview or any(r.event.preview for r in records),
                       "click_ids": clicks, "events": events})

    async def journeys(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        value = request.query.get("click", "")
        if not value or len(value) > MAX_CLICK_VALUE:
            raise BadQuery(f"click must be a click-id value of 1 to {MAX_CLICK_VALUE} characters")
        return answer({"journeys": await self.edge.journeys.ids_by_click_value(value, MAX_SEARCH)})

    async def events(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        limit = number(request, "limit", 100, 1000)
        records = await self.reads.recent_events(limit)
        return answer({"events": [event_view(r, visitor=True) for r in records]})

    async def funnel(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        days = number(request, "days", 30, funnel.KEEP_DAYS)
        by = request.query.get("by") or "source"
        if by not in funnel.BY:
            raise BadQuery("by must be source or job")
        cells = await self.reads.funnel(by, funnel.first_day(days, time.time()))
        return answer({"days": days, "by": by, "steps": list(funnel.STEPS),
                       "rows": funnel.rows(cells)})

    async def sinks(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        hours = number(request, "hours", 24, 24 * 30)
        since = hour_of(time.time()) - (hours - 1) * 3600
        rows = [{"sink": s, "hour": h, "sent": sent, "retried": retried, "dead": dead}
                for s, h, sent, retried, dead in await self.reads.sink_hours(since)]
        return answer({"hours": hours, "rows": rows})

    async def dead(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        limit = number(request, "limit", 100, 1000)
        rows = await self.edge.outbox.list_rows(dead=True, limit=limit)
        return answer({"dead": [dead_view(r) for r in rows]})

    async def retry(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        row_id, _, action = self._sub(target).removeprefix("/api/outbox/").partition("/")
        if action != "retry" or not ROW_ID.fullmatch(row_id):
            return problem(404, "no such endpoint")
        if request.method != "POST":
            return problem(405, "method not allowed")
        outbox = self.edge.outbox
        row = await outbox.get(int(row_id))
        if row is None:
            return problem(404, "no such outbox row")
        if row.state is not RowState.DEAD:
            return problem(409, "only a dead letter can be retried", status=row.state.value)
        if not await outbox.retry_dead(row_id=row.id):
            return problem(409, "past the 7-day limit: the network would refuse it",
                           status=row.state.value)
        again = await outbox.get(row.id)
        if again is not None:
            self.edge.live.publish("delivery", stream_delivery(again))
        return answer({"id": str(row.id), "status": RowState.PENDING.value})

    async def rules(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        hits = await self.reads.rule_hits()
        out = []
        for rule in self.edge.runtime.config.rules:
            _, n, last = hits.pop(rule.name, (rule.event, 0, None))
            out.append({"name": rule.name, "event": rule.event, "hits": n, "last_fired": last})
        for name, (event, n, last) in sorted(hits.items()):    # rules since removed
            out.append({"name": name, "event": event, "hits": n, "last_fired": last})
        return answer({"rules": out})
