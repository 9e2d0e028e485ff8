"""OAuth tokens: kept until they expire (less a margin), one fetch for concurrent
senders, and whatever a network answers read without a crash."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import aiohttp
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from network_sinks import serve

from proxy.conversions.backoff import GiveUp, Retry, Sent
from proxy.conversions.sinks.base import timeout_for
from proxy.conversions.sinks.google_ads import date_time, per_conversion
from proxy.conversions.sinks.oauth import EXPIRY_MARGIN, TokenSource

FORM = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}


async def test_a_token_is_kept_until_it_expires_less_the_margin(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.ads.token_ttl = 600
    now = [1000.0]
    tokens = TokenSource(base + "/oauth/token", FORM, timeout_for(5), clock=lambda: now[0])
    async with aiohttp.ClientSession() as s:
        first = await tokens.token(s)
        now[0] += 600 - EXPIRY_MARGIN - 1
        assert await tokens.token(s) == first
        now[0] += 2
        second = await tokens.token(s)
    assert isinstance(second, str) and second != first
    assert len(rec.of("oauth")) == 2 and tokens.fetches == 2


async def test_concurrent_senders_share_one_fetch(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    tokens = TokenSource(base + "/oauth/token", FORM, timeout_for(5))
    async with aiohttp.ClientSession() as s:
        got = await asyncio.gather(*(tokens.token(s) for _ in range(8)))
    assert len(set(got)) == 1 and len(rec.of("oauth")) == 1


async def test_answers_without_a_usable_token_are_given_up(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    tokens = TokenSource(base + "/oauth/token", FORM, timeout_for(5))
    async with aiohttp.ClientSession() as s:
        rec.fail_next("/oauth/", 200, body=b'{"token_type": "Bearer"}')
        missing = await tokens.token(s)
        rec.fail_next("/oauth/", 200, body=b"<html>")
        garbage = await tokens.token(s)
        rec.fail_next("/oauth/", 429, retry_after=7)
        limited = await tokens.token(s)
    assert isinstance(missing, GiveUp) and "no access_token" in missing.error
    assert isinstance(garbage, GiveUp) and garbage.body == "<html>"
    assert limited == Retry("OAuth token: HTTP 429", 7.0)


async def test_an_unreachable_token_endpoint_is_retried(unused_tcp_port):
    tokens = TokenSource(f"http://127.0.0.1:{unused_tcp_port}/token", FORM, timeout_for(2))
    async with aiohttp.ClientSession() as s:
        got = await tokens.token(s)
    assert isinstance(got, Retry) and got.error.startswith("OAuth token: ClientConnectorError")


ZONES = sorted(z for z in available_timezones() if "/" in z)[:400:7] + ["UTC"]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=4_000_000_000), st.sampled_from(ZONES))
def test_conversion_date_time_names_the_same_instant_in_any_zone(when, zone):
    text = date_time(when, zone)
    parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S%z")
    assert parsed.timestamp() == math.floor(when)
    local = datetime.fromtimestamp(when, ZoneInfo(zone)).utcoffset()
    assert parsed.utcoffset() == (local if local.seconds % 60 == 0 else timedelta(0))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({"partialFailureError": JSON, "results": JSON}),
                 st.fixed_dictionaries({"partialFailureError": st.fixed_dictionaries({
                     "details": st.lists(st.fixed_dictionaries({"errors": JSON}))})})),
       st.integers(min_value=1, max_value=5))
def test_any_google_answer_gives_one_decision_per_conversion(doc, count):
    decisions = per_conversion(orjson.dumps(doc), count)
    assert len(decisions) == count
    assert all(isinstance(d, (Sent, Retry, GiveUp)) for d in decisions)
