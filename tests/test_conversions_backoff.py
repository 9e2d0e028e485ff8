"""Backoff and classification: pure functions, no sockets."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.conversions.backoff import (
    BackoffPolicy,
    GiveUp,
    Retry,
    Sent,
    classify,
    next_delay,
    parse_retry_after,
)

POLICY = BackoffPolicy(base=1.0, cap=900.0)


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=0))
def test_full_jitter_stays_within_the_exponential_envelope(attempt, seed):
    d = next_delay(attempt, None, random.Random(seed), POLICY)
    assert 0.0 <= d <= min(900.0, 2.0 ** min(attempt - 1, 20))


def test_the_envelope_grows_then_caps():
    rng = random.Random(0)
    highs = [max(next_delay(a, None, rng, POLICY) for _ in range(200)) for a in (1, 4, 30)]
    assert highs[0] <= 1.0 < highs[1] <= 8.0 and 450 < highs[2] <= 900


@given(st.floats(min_value=-10, max_value=1e9, allow_nan=False))
def test_retry_after_is_honoured_but_capped(after):
    assert next_delay(3, after, random.Random(1), POLICY) == min(max(after, 0.0), 900.0)


def test_parse_retry_after_seconds_and_http_date():
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(date, now) == 120.0
    past = format_datetime(datetime.fromtimestamp(now - 5, UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for junk in (None, "", "soon", "-1", "1.5e3"):
        assert parse_retry_after(junk, now) is None


def test_classify_statuses():
    assert classify(200) == classify(204) == Sent()
    assert classify(429, b"", 7.0) == Retry("HTTP 429", 7.0)
    assert classify(503) == Retry("HTTP 503")
    assert classify(400, b"x" * 5000) == GiveUp("HTTP 400", "x" * 4096)
    assert classify(301) == GiveUp("HTTP 301", "")


def test_classify_exceptions():
    assert classify(TimeoutError()) == Retry("timeout")
    assert isinstance(classify(aiohttp.ServerDisconnectedError()), Retry)
    assert isinstance(classify(ConnectionResetError()), Retry)
    assert isinstance(classify(ValueError("bad template")), GiveUp)


@given(st.binary(max_size=9000))
def test_a_dead_letter_body_is_at_most_4_kib_of_text(body):
    d = classify(418, body)
    assert isinstance(d, GiveUp) and len(d.body) <= 4096
    assert d.body == body[:4096].decode("utf-8", "replace")
