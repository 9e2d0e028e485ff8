"""What a sink is to the dispatcher, and the one HTTP call every sink makes.

A sink client turns events into requests and answers one `Decision` per event, in
order. It never raises for a network's answer: `deliver` turns statuses and transport
errors into decisions (`backoff.classify`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
from aiohttp import hdrs
from yarl import URL

from proxy.conversions.backoff import BODY_LIMIT, Decision, classify, parse_retry_after
from proxy.conversions.events import Event

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "careers-edge"


class SinkClient(Protocol):
    batch_size: int         # events per `send` call at most

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]: ...


async def deliver(session: aiohttp.ClientSession, method: str, url: str | URL, *,
                  timeout: aiohttp.ClientTimeout, headers: dict[str, str] | None = None,
                  data: bytes | None = None) -> Decision:
    """One request → one decision; reads at most BODY_LIMIT bytes of the answer."""
    all_headers = {hdrs.USER_AGENT: USER_AGENT, **(headers or {})}
    try:
        async with session.request(method, url, headers=all_headers, data=data,
                                   timeout=timeout, allow_redirects=False) as resp:
            body = await resp.content.read(BODY_LIMIT)
            after = parse_retry_after(resp.headers.get(hdrs.RETRY_AFTER), time.time())
            return classify(resp.status, body, after)
    except Exception as e:          # timeouts, refused, reset: classify says retry
        return classify(e)


def timeout_for(seconds: float, connect: float | None = None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, sock_connect=connect or seconds)


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values: networks prefer a missing key to a null one."""
    return {k: v for k, v in d.items() if v is not None and v != ""}
