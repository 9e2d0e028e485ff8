"""LinkedIn Conversions API: `POST {api}/rest/conversionEvents`.

Each event becomes `{conversion, conversionHappenedAt (ms), user: {userIds}, eventId}`:
`conversion` is the conversion rule's URN (`conversion`, or per event in
`event_names`; a bare id becomes `urn:lla:llaPartnerConversion:{id}`), the user is
identified by the `li_fat_id` click id as LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID,
and `eventId` is our event id, the one the Insight Tag is given, so LinkedIn counts
the pair once. One event is a plain create (201); several are one Rest.li
BATCH_CREATE (`X-RestLi-Method`), whose 200 answers a status per element — each
element is decided by its own status. Every request carries `LinkedIn-Version` and
`X-Restli-Protocol-Version: 2.0.0` and the access token as a bearer token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.config.networks import LINKEDIN_URN_PREFIX
from proxy.conversions.backoff import Decision, GiveUp, classify, truncate_body
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import (
    REPORT_LIMIT,
    PostingSink,
    Prepared,
    batch_decisions,
    bearer,
    in_batches,
)

DEFAULT_VERSION = "202603"
PATH = "/rest/conversionEvents"
ID_TYPE = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
MAX_BATCH = 5000
VERSION_HEADER = "LinkedIn-Version"
PROTOCOL_HEADER = "X-Restli-Protocol-Version"
PROTOCOL = "2.0.0"
METHOD_HEADER = "X-RestLi-Method"
BATCH_CREATE = "BATCH_CREATE"


def conversion_urn(sink: Sink, event: Event) -> str | None:
    rule = sink.event_names.get(event.name) or sink.conversion
    if not rule:
        return None
    return LINKEDIN_URN_PREFIX + rule if rule.isdigit() else rule


def element(sink: Sink, event: Event) -> dict[str, Any]:
    return {
        "conversion": conversion_urn(sink, event),
        "conversionHappenedAt": int(event.event_time * 1000),
        "user": {"userIds": [{"idType": ID_TYPE, "idValue": event.click_ids.get("li_fat_id")}]},
        "eventId": event.event_id,
    }


def per_element(body: bytes, count: int) -> list[Decision]:
    """Decisions for a BATCH_CREATE's 200, one per element status."""
    try:
        elements = orjson.loads(body)["elements"]
        statuses = [int(e["status"]) for e in elements]
    except (ValueError, TypeError, KeyError):
        return [GiveUp("LinkedIn answered a batch without statuses", truncate_body(body))] * count
    if len(statuses) != count:
        return [GiveUp(f"LinkedIn answered {len(statuses)} statuses for {count} events",
                       truncate_body(body))] * count
    return [classify(s, orjson.dumps(e)) for s, e in zip(statuses, elements, strict=True)]


class LinkedInSink(PostingSink):
    batch_size = MAX_BATCH
    path = PATH

    def prepare(self, events: Sequence[Event], token: str | None = None) -> Prepared:
        headers = {hdrs.AUTHORIZATION: bearer(token or self.sink.access_token or ""),
                   hdrs.CONTENT_TYPE: "application/json",
                   VERSION_HEADER: self.sink.api_version or DEFAULT_VERSION,
                   PROTOCOL_HEADER: PROTOCOL}
        if len(events) == 1:
            return Prepared("POST", self.url, headers, orjson.dumps(element(self.sink, events[0])))
        headers[METHOD_HEADER] = BATCH_CREATE
        body = {"elements": [element(self.sink, e) for e in events]}
        return Prepared("POST", self.url, headers, orjson.dumps(body))

    def unsendable(self, event: Event) -> GiveUp | None:
        if not event.click_ids.get("li_fat_id"):
            return GiveUp("no li_fat_id click id")
        if conversion_urn(self.sink, event) is None:
            return GiveUp(f"no conversion rule for {event.name}: set conversion or event_names")
        return None

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        async def chunk(batch: list[Event]) -> list[Decision]:
            answer = await self.prepare(batch).send(session, self.timeout, REPORT_LIMIT)
            # one element is sent alone, not as a BATCH_CREATE: its status is the answer's
            return batch_decisions(answer, len(batch), per_element if len(batch) > 1 else None)
        return await in_batches(events, MAX_BATCH, self.unsendable, chunk)
