"""Indeed Conversion Tracking API: `POST {api}/enterprise/conversions/v1/events`.

The body is a JSON array of events `{event, guid, ittk, eventTimeMs, jobUid?,
testFire?}`. `event` is JOB_PAGE_LANDED or APPLY_COMPLETE: `event_names` maps ours
(by default ConversationStart → JOB_PAGE_LANDED, ApplicationCompleted →
APPLY_COMPLETE); routing skips an event that maps to neither, and one that arrives
anyway is given up, never sent. `ittk` is the visitor's most recent Indeed tracking
token, as Indeed asks (the attribution cookie keeps only the latest value of a param).
`testFire` marks a preview visitor's events, and every event with `test_fire = true`
(Indeed asks for it while onboarding).

Auth is OAuth 2 client credentials (`oauth.TokenSource`). Indeed allows 1,000
requests per 5 minutes per IP: events go up to 100 a request, and a 429 waits in the
outbox for its Retry-After; nothing is dropped for the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.config.networks import INDEED_EVENTS, INDEED_TOKEN_URL
from proxy.conversions.backoff import Decision, GiveUp
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import (
    PostingSink,
    Prepared,
    batch_decisions,
    bearer,
    compact,
    in_batches,
    timeout_for,
)
from proxy.conversions.sinks.oauth import TokenSource, authorized

PATH = "/enterprise/conversions/v1/events"
DEFAULT_EVENT_NAMES = {"ConversationStart": "JOB_PAGE_LANDED",
                       "ApplicationCompleted": "APPLY_COMPLETE"}
MAX_BATCH = 100


def indeed_event(sink: Sink, event: Event) -> str | None:
    name = sink.event_names.get(event.name) or DEFAULT_EVENT_NAMES.get(event.name)
    return name if name in INDEED_EVENTS else None


def event_payload(sink: Sink, event: Event) -> dict[str, Any]:
    payload = compact({
        "event": indeed_event(sink, event),
        "guid": sink.guid,
        "ittk": event.click_ids.get("ittk"),
        "eventTimeMs": int(event.event_time * 1000),
        "jobUid": event.job_id,
    })
    if sink.test_fire or event.preview:
        payload["testFire"] = True
    return payload


def token_source(sink: Sink) -> TokenSource:
    form = {"grant_type": "client_credentials", "client_id": sink.client_id or "",
            "client_secret": sink.client_secret or ""}
    if sink.scope:
        form["scope"] = sink.scope
    return TokenSource(sink.token_url or INDEED_TOKEN_URL, form, timeout_for(sink.timeout))


class IndeedSink(PostingSink):
    batch_size = MAX_BATCH
    path = PATH

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink)
        self.tokens = token_source(sink)

    def prepare(self, events: Sequence[Event], token: str) -> Prepared:
        body = orjson.dumps([event_payload(self.sink, e) for e in events])
        return Prepared("POST", self.url, {hdrs.AUTHORIZATION: bearer(token),
                                           hdrs.CONTENT_TYPE: "application/json"}, body)

    def unsendable(self, event: Event) -> GiveUp | None:
        if indeed_event(self.sink, event) is None:
            return GiveUp(f"Indeed takes only {' and '.join(INDEED_EVENTS)}: map {event.name} "
                          "to one in event_names")
        if not event.click_ids.get("ittk"):
            return GiveUp("no ittk click id")
        return None

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        async def chunk(batch: list[Event]) -> list[Decision]:
            answer = await authorized(session, self.tokens,
                                      lambda t: self.prepare(batch, t).send(session, self.timeout))
            return batch_decisions(answer, len(batch))
        return await in_batches(events, MAX_BATCH, self.unsendable, chunk)
