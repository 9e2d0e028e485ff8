"""Meta Conversions API: `POST {api}/{pixel_id}/events`, up to 1000 events a request.

Meta rejects a whole request when one event in it is older than 7 days, so stale
events are given up one by one and never batched with fresh ones. Website events
need `event_source_url` and `client_user_agent`; an event with no page behind it (a
hire posted by the ATS to the events API) is sent as `system_generated`, which needs
neither, rather than be rejected as an incomplete website event. `event_id` is
Meta's deduplication key (with the browser pixel's eventID, and across retries).
A preview visitor's events are sent in requests of their own, with the sink's
`preview_test_event_code`: they show in Events Manager's Test events tab only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision, GiveUp
from proxy.conversions.events import Event
from proxy.conversions.outbox import MAX_EVENT_AGE
from proxy.conversions.sinks.base import compact, deliver, timeout_for
from proxy.conversions.sinks.hashing import sha256_hex

MAX_BATCH = 1000
WEBSITE = "website"
SERVER_SIDE = "system_generated"
CONNECT_TIMEOUT = 1.5       # Meta answers most requests within 600 ms


def event_payload(sink: Sink, event: Event) -> dict[str, Any]:
    user_data = compact({
        "client_ip_address": event.client_ip,
        "client_user_agent": event.user_agent,
        "fbc": event.fbc,
        "fbp": event.fbp,
        "external_id": [sha256_hex(event.links_clicked_id)] if event.links_clicked_id else None,
    })
    custom_data = compact({**event.fields, "linksClickedId": event.links_clicked_id,
                           "jobName": event.job_name})
    return compact({
        "event_name": sink.event_name(event.name),
        "event_time": int(event.event_time),
        "event_id": event.event_id,
        "action_source": WEBSITE if event.url else SERVER_SIDE,
        "event_source_url": event.url,
        "user_data": user_data,
        "custom_data": custom_data or None,
    })


def request_body(sink: Sink, events: Sequence[Event]) -> bytes:
    """One request's body; events of one kind (all preview or none: `send` splits)."""
    body: dict[str, Any] = {"data": [event_payload(sink, e) for e in events],
                            "access_token": sink.access_token or ""}
    code = sink.test_event_code
    if not code and events and events[0].preview:
        code = sink.preview_test_event_code
    if code:
        body["test_event_code"] = code
    return orjson.dumps(body)


class MetaSink:
    batch_size = MAX_BATCH

    def __init__(self, sink: Sink, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.clock = clock
        self.url = f"{sink.api.rstrip('/')}/{sink.pixel_id}/events"
        self.timeout = timeout_for(sink.timeout, CONNECT_TIMEOUT)

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        oldest = self.clock() - MAX_EVENT_AGE
        out: list[Decision | None] = [None] * len(events)
        # A test event code is per request: a preview visitor's events go in their own.
        fresh: dict[bool, list[int]] = {False: [], True: []}
        for i, e in enumerate(events):
            if e.event_time < oldest:
                out[i] = GiveUp("expired: older than 7 days")
            else:
                fresh[e.preview].append(i)
        chunks = [ids[start:start + MAX_BATCH] for ids in fresh.values()
                  for start in range(0, len(ids), MAX_BATCH)]
        for chunk in chunks:
            body = request_body(self.sink, [events[i] for i in chunk])
            decision = await deliver(session, "POST", self.url, timeout=self.timeout,
                                     headers={hdrs.CONTENT_TYPE: "application/json"},
                                     data=body)
            for i in chunk:
                out[i] = decision
        return [d for d in out if d is not None]
