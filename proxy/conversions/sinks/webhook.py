"""Signed webhooks: `POST` the event as JSON, HMAC-SHA256 of the exact body.

Receivers verify `X-Careers-Edge-Signature: sha256=<hex>` against the raw body with
the shared `secret`, and drop repeats by `Idempotency-Key` (the event id): delivery
is at-least-once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import IDEMPOTENCY_HEADER, deliver, timeout_for

SIGNATURE_HEADER = "X-Careers-Edge-Signature"


def webhook_body(sink: Sink, event: Event) -> bytes:
    payload: dict[str, Any] = {
        "event": sink.event_name(event.name),
        "event_id": event.event_id,
        "event_time": int(event.event_time),
        "linksClickedId": event.links_clicked_id,
        "click_ids": dict(event.click_ids),
        "jobName": event.job_name,
        "job_id": event.job_id,
        "url": event.url,
        "user_agent": event.user_agent,
    }
    if event.fields:
        payload["fields"] = dict(event.fields)
    return orjson.dumps(payload)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does; kept here so the scheme is defined once."""
    return hmac.compare_digest(signature(secret, body), header)


class WebhookSink:
    batch_size = 1

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.timeout = timeout_for(sink.timeout)

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        out: list[Decision] = []
        for event in events:
            body = webhook_body(self.sink, event)
            headers = {**self.sink.headers, hdrs.CONTENT_TYPE: "application/json",
                       IDEMPOTENCY_HEADER: event.event_id}
            if self.sink.secret:
                headers[SIGNATURE_HEADER] = signature(self.sink.secret, body)
            out.append(await deliver(session, "POST", self.sink.url or "", timeout=self.timeout,
                                     headers=headers, data=body))
        return out
