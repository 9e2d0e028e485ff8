"""Delivery decisions as values, and how long to wait before the next attempt.

A sink answers each event with a `Decision`: `Sent`, `Retry(after)` or
`GiveUp(error, body)`. `classify` maps an HTTP status or a transport exception to
one (retry timeouts, connection errors, 429 and 5xx; dead-letter other 4xx with the
response body; give up on 3xx). `next_delay` is exponential backoff with full jitter,
honouring (but capping) a Retry-After. Pure: no I/O, the random source is passed in.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp

BODY_LIMIT = 4096          # bytes of a rejected response kept in the dead letter
BASE_DELAY = 1.0           # seconds
MAX_DELAY = 15 * 60.0      # seconds: no wait is longer, Retry-After included


# `code` and `body` are the network's answer (status, head of the body) when there was
# one: the outbox keeps them per row for the operators (`last_code`, `last_body`).
# Not compared: a decision is the same decision whatever the network said with it.
@dataclass(frozen=True, slots=True)
class Sent:
    code: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    after: float | None = None      # the server's Retry-After, seconds
    code: int | None = field(default=None, compare=False)
    body: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class GiveUp:
    error: str
    body: str = ""
    code: int | None = field(default=None, compare=False)


Decision = Sent | Retry | GiveUp


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base: float = BASE_DELAY
    cap: float = MAX_DELAY


DEFAULT_POLICY = BackoffPolicy()


def next_delay(attempt: int, retry_after: float | None, rng: random.Random,
               policy: BackoffPolicy = DEFAULT_POLICY) -> float:
    """Seconds before attempt `attempt + 1`; `attempt` counts tries made so far (≥ 1)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.cap)
    exp = min(policy.cap, policy.base * 2.0 ** min(max(attempt - 1, 0), 60))
    return rng.uniform(0.0, exp)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def truncate_body(body: bytes | str) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return raw[:BODY_LIMIT].decode("utf-8", "replace")


def classify(outcome: int | BaseException, body: bytes | str = b"",
             retry_after: float | None = None) -> Decision:
    """The decision for an HTTP status, or for the exception a request raised."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, (asyncio.TimeoutError, TimeoutError)):
            return Retry("timeout")
        if isinstance(outcome, (aiohttp.ClientError, OSError)):
            return Retry(f"{type(outcome).__name__}: {outcome}"[:500])
        return GiveUp(f"{type(outcome).__name__}: {outcome}"[:500])
    status = outcome
    if 200 <= status < 300:
        return Sent(status)
    if status == 429 or status >= 500:
        return Retry(f"HTTP {status}", retry_after, status, truncate_body(body))
    return GiveUp(f"HTTP {status}", truncate_body(body), status)
