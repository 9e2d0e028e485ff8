"""Talroo conversion GETs over a real socket."""

from __future__ import annotations

import aiohttp
from test_conversions_recorder import Recorder

from proxy.config.model import Sink
from proxy.conversions.backoff import GiveUp, Retry, Sent
from proxy.conversions.events import Event
from proxy.conversions.sinks import build_sink

SID = "0f8e2c1a-1b2c-4d5e-8f90-123456789abc"


async def test_get_shape_per_event_url_and_existing_query(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    sink = Sink("talroo", "talroo", url=rec.url("/conversion2.php?account=7"),
                events={"Hire": rec.url("/conversion3.php")})
    client = build_sink(sink)
    events = [Event("ApplicationCompleted", click_ids={"tlr_sid": SID}),
              Event("Hire", click_ids={"tlr_sid": SID}),
              Event("ApplicationCompleted", click_ids={})]
    async with aiohttp.ClientSession() as s:
        decisions = await client.send(s, events)
    assert decisions[:2] == [Sent(), Sent()] and isinstance(decisions[2], GiveUp)
    first, hire = rec.requests
    assert (first.method, first.raw_path) == (
        "GET", f"/conversion2.php?account=7&tlr_sid={SID}&Link=true")
    assert hire.raw_path == f"/conversion3.php?tlr_sid={SID}&Link=true"
    assert first.body == b""


async def test_statuses_become_decisions(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/c", 503, 404)
    client = build_sink(Sink("talroo", "talroo", url=rec.url("/c")))
    async with aiohttp.ClientSession() as s:
        got = [await client.send(s, [Event("X", click_ids={"tlr_sid": SID})]) for _ in range(2)]
    assert got[0] == [Retry("HTTP 503")]
    assert got[1] == [GiveUp("HTTP 404", "ok")]
