"""What a sink is to the dispatcher, and the one HTTP call every sink makes.

A sink client turns events into requests and answers one `Decision` per event, in
order. It never raises for a network's answer: `deliver` turns statuses and transport
errors into decisions (`backoff.classify`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp
from aiohttp import hdrs
from yarl import URL

from proxy.config.model import Sink
from proxy.conversions.backoff import BODY_LIMIT, Decision, GiveUp, classify, parse_retry_after
from proxy.conversions.events import Event

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "careers-edge"
# Answers read whole because they report per event (a batch of thousands of events).
REPORT_LIMIT = 4 * 1024 * 1024


class SinkClient(Protocol):
    batch_size: int         # events per `send` call at most

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]: ...


class PostingSink:
    """What the sinks posting to one `{api}{path}` endpoint share: their config, that
    URL and their timeout."""

    path: ClassVar[str]

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.url = sink.api.rstrip("/") + self.path
        self.timeout = timeout_for(sink.timeout)


@dataclass(frozen=True, slots=True)
class Answer:
    """A network's answer, for sinks that read more than the status (a 200 that
    reports per-event failures, an OAuth token)."""

    status: int
    body: bytes
    retry_after: float | None = None

    def decision(self) -> Decision:
        return classify(self.status, self.body, self.retry_after)


async def exchange(session: aiohttp.ClientSession, method: str, url: str | URL, *,
                   timeout: aiohttp.ClientTimeout, headers: dict[str, str] | None = None,
                   data: bytes | None = None, limit: int = BODY_LIMIT) -> Answer | Decision:
    """One request → its `Answer` (at most `limit` bytes of body), or the `Decision`
    for a transport error (timeouts, refused, reset: retry)."""
    all_headers = {hdrs.USER_AGENT: USER_AGENT, **(headers or {})}
    try:
        async with session.request(method, url, headers=all_headers, data=data,
                                   timeout=timeout, allow_redirects=False) as resp:
            body = await resp.content.read(limit)
            after = parse_retry_after(resp.headers.get(hdrs.RETRY_AFTER), time.time())
            return Answer(resp.status, body, after)
    except Exception as e:
        return classify(e)


async def deliver(session: aiohttp.ClientSession, method: str, url: str | URL, *,
                  timeout: aiohttp.ClientTimeout, headers: dict[str, str] | None = None,
                  data: bytes | None = None) -> Decision:
    """One request → one decision; reads at most BODY_LIMIT bytes of the answer."""
    answer = await exchange(session, method, url, timeout=timeout, headers=headers, data=data)
    return answer.decision() if isinstance(answer, Answer) else answer


def timeout_for(seconds: float, connect: float | None = None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, sock_connect=connect or seconds)


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values: networks prefer a missing key to a null one."""
    return {k: v for k, v in d.items() if v is not None and v != ""}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request built but not sent: what a sink sends, and what `explain` shows."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    async def send(self, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout,
                   limit: int = BODY_LIMIT) -> Answer | Decision:
        return await exchange(session, self.method, self.url, timeout=timeout,
                              headers=self.headers, data=self.body, limit=limit)


def batch_decisions(answer: Answer | Decision, count: int,
                    per_event: Callable[[bytes, int], list[Decision]] | None = None,
                    decide: Callable[[Answer], Decision] = Answer.decision) -> list[Decision]:
    """One batch's answer → `count` decisions, in order: a transport error or any
    answer decides for all (by `decide`), except a 200 that `per_event` reads (body,
    count) when the network reports per event."""
    if not isinstance(answer, Answer):
        return [answer] * count
    if per_event is not None and answer.status == 200:
        return per_event(answer.body, count)
    return [decide(answer)] * count


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def in_batches(events: Sequence[Event], size: int,
                     unsendable: Callable[[Event], GiveUp | None],
                     send: Callable[[list[Event]], Awaitable[list[Decision]]]) -> list[Decision]:
    """One decision per event, in order: those `unsendable` names are given up alone,
    the rest sent `size` at a time by `send` (which answers one decision per event)."""
    out: list[Decision | None] = [None] * len(events)
    ready: list[int] = []
    for i, event in enumerate(events):
        problem = unsendable(event)
        if problem is None:
            ready.append(i)
        else:
            out[i] = problem
    for start in range(0, len(ready), size):
        chunk = ready[start:start + size]
        for i, decision in zip(chunk, await send([events[i] for i in chunk]), strict=True):
            out[i] = decision
    return [d for d in out if d is not None]
