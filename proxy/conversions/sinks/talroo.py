"""Talroo ClickId conversions: `GET {url}?tlr_sid=<id>&Link=true`.

The URL is per event (`events = { Hire = ".../conversion3.php" }`), defaulting to
the sink's `url`; a query already in it is kept. Talroo has no idempotency key: the
outbox's dedupe is what makes a conversion count once.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from yarl import URL

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision, GiveUp
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import deliver, timeout_for

DEFAULT_URL = "https://www.jobs2careers.com/conversion2.php"


class TalrooSink:
    batch_size = 1

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.timeout = timeout_for(sink.timeout)

    def url_for(self, event: Event) -> URL | None:
        sid = event.click_ids.get("tlr_sid")
        if not sid:
            return None
        base = self.sink.events.get(event.name) or self.sink.url or DEFAULT_URL
        return URL(base).extend_query(tlr_sid=sid, Link="true")

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        out: list[Decision] = []
        for event in events:
            url = self.url_for(event)
            if url is None:
                out.append(GiveUp("no tlr_sid click id"))
            else:
                out.append(await deliver(session, "GET", url, timeout=self.timeout))
        return out
