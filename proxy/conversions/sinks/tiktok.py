"""TikTok Events API 1.3: `POST {api}/open_api/v1.3/event/track/`, up to 1,000 events.

Body: `{event_source: "web", event_source_id: pixel_code, test_event_code?, data: [{
event, event_time (s), event_id, user, page: {url}, properties}]}` with the
`Access-Token` header. `user` carries `ttclid` (the click id) and `ttp` (the TikTok
pixel's `_ttp` cookie) as they are, `ip` and `user_agent` unhashed as TikTok asks,
and `external_id` as the SHA-256 of the linksClickedId. `event_id` is shared with the
TikTok pixel, which TikTok deduplicates against within 48 hours. `event_names` maps our
names (ApplicationCompleted → SubmitApplication by default).

TikTok answers most errors with HTTP 200 and a non-zero `code`: 40100 (too many
requests) and 5xxxx (TikTok's own errors) are retried, any other code is given up
with the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision, GiveUp, Retry, Sent, truncate_body
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import (
    Answer,
    PostingSink,
    Prepared,
    batch_decisions,
    compact,
    in_batches,
)
from proxy.conversions.sinks.hashing import sha256_hex

PATH = "/open_api/v1.3/event/track/"
ACCESS_TOKEN = "Access-Token"
# The tiktok pixel's defaults too, so the browser and server events dedupe.
DEFAULT_EVENT_NAMES = {"ApplicationCompleted": "SubmitApplication"}
MAX_BATCH = 1000
RATE_LIMITED = 40100


def event_name(sink: Sink, event: Event) -> str:
    return sink.event_names.get(event.name) or DEFAULT_EVENT_NAMES.get(event.name, event.name)


def event_payload(sink: Sink, event: Event) -> dict[str, Any]:
    user = compact({
        "ttclid": event.click_ids.get("ttclid"),
        "ttp": event.ttp,
        "external_id": sha256_hex(event.links_clicked_id) if event.links_clicked_id else None,
        "ip": event.client_ip,
        "user_agent": event.user_agent,
    })
    content = compact({"content_id": event.job_id, "content_name": event.job_name})
    properties = {"content_type": "product", "contents": [content]} if content else None
    return compact({
        "event": event_name(sink, event),
        "event_time": int(event.event_time),
        "event_id": event.event_id,
        "user": user,
        "page": {"url": event.url} if event.url else None,
        "properties": properties,
    })


def decision(answer: Answer) -> Decision:
    if answer.status != 200:
        return answer.decision()
    try:
        doc = orjson.loads(answer.body)
        code = int(doc.get("code", -1))
    except (ValueError, TypeError, AttributeError):
        return GiveUp("TikTok answered 200 without JSON", truncate_body(answer.body))
    if code == 0:
        return Sent()
    text = f"TikTok code {code}: {str(doc.get('message', ''))[:300]}"
    if code == RATE_LIMITED or code >= 50000:
        return Retry(text, answer.retry_after)
    return GiveUp(text, truncate_body(answer.body))


class TikTokSink(PostingSink):
    batch_size = MAX_BATCH
    path = PATH

    def prepare(self, events: Sequence[Event], token: str | None = None) -> Prepared:
        body: dict[str, Any] = {"event_source": "web", "event_source_id": self.sink.pixel_code,
                                "data": [event_payload(self.sink, e) for e in events]}
        if self.sink.test_event_code:
            body["test_event_code"] = self.sink.test_event_code
        headers = {ACCESS_TOKEN: token or self.sink.access_token or "",
                   hdrs.CONTENT_TYPE: "application/json"}
        return Prepared("POST", self.url, headers, orjson.dumps(body))

    @staticmethod
    def unsendable(event: Event) -> GiveUp | None:
        return None

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        async def chunk(batch: list[Event]) -> list[Decision]:
            answer = await self.prepare(batch).send(session, self.timeout)
            return batch_decisions(answer, len(batch), decide=decision)
        return await in_batches(events, MAX_BATCH, self.unsendable, chunk)
