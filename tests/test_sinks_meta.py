"""Meta Conversions API payloads and batching, against a recording server."""

from __future__ import annotations

import hashlib
import time

import aiohttp
import orjson
from test_conversions_recorder import Recorder, Reply

from proxy.config.model import Sink
from proxy.conversions.backoff import GiveUp, Retry, Sent
from proxy.conversions.events import Event
from proxy.conversions.outbox import MAX_EVENT_AGE
from proxy.conversions.sinks.meta import MetaSink


def meta(rec: Recorder, **kw) -> Sink:
    kw.setdefault("event_names", {"ApplicationCompleted": "SubmitApplication"})
    return Sink("meta", "meta", api=rec.url("/v21.0/"), pixel_id="123456789012345",
                access_token="TOKEN", **kw)


def full_event(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "event_id": "e1", "event_time": time.time() - 5.7,
            "links_clicked_id": "LCID-1", "click_ids": {"fbclid": "AbC"}, "job_id": "42",
            "job_name": "Nurse (m/f/d)", "url": "https://careers.acme.example/jobs/42/thanks",
            "client_ip": "203.0.113.9", "user_agent": "Mozilla/5.0", "fbc": "fb.1.1700.AbC",
            "fbp": "fb.1.1700.99", "fields": {"location": "Berlin"}}
    base.update(kw)
    return Event(**base)


async def send(sink: Sink, events: list[Event]):
    async with aiohttp.ClientSession() as s:
        return await MetaSink(sink).send(s, events)


async def test_payload_carries_every_field(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    e = full_event()
    assert await send(meta(rec, test_event_code="TEST123"), [e]) == [Sent()]
    (req,) = rec.requests
    assert (req.method, req.path) == ("POST", "/v21.0/123456789012345/events")
    assert req.headers["Content-Type"] == "application/json"
    body = orjson.loads(req.body)
    assert body["access_token"] == "TOKEN" and body["test_event_code"] == "TEST123"
    assert body["data"] == [{
        "event_name": "SubmitApplication",
        "event_time": int(e.event_time),
        "event_id": "e1",
        "action_source": "website",
        "event_source_url": "https://careers.acme.example/jobs/42/thanks",
        "user_data": {
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0",
            "fbc": "fb.1.1700.AbC",
            "fbp": "fb.1.1700.99",
            "external_id": [hashlib.sha256(b"lcid-1").hexdigest()],
        },
        "custom_data": {"location": "Berlin", "linksClickedId": "LCID-1",
                        "jobName": "Nurse (m/f/d)"},
    }]


async def test_an_event_without_a_page_is_system_generated(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    e = Event("Hire", event_id="h1")
    await send(meta(rec), [e])
    body = orjson.loads(rec.requests[0].body)
    assert "test_event_code" not in body
    assert body["data"] == [{"event_name": "Hire", "event_time": int(e.event_time),
                             "event_id": "h1", "action_source": "system_generated",
                             "user_data": {}}]


async def test_batches_of_at_most_1000(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    events = [full_event(event_id=f"e{i}") for i in range(1001)]
    decisions = await send(meta(rec), events)
    assert decisions == [Sent()] * 1001
    sizes = [len(orjson.loads(r.body)["data"]) for r in rec.requests]
    assert sizes == [1000, 1]
    ids = [d["event_id"] for r in rec.requests for d in orjson.loads(r.body)["data"]]
    assert ids == [f"e{i}" for i in range(1001)]


async def test_a_stale_event_is_never_batched_with_fresh_ones(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    stale = full_event(event_id="old", event_time=time.time() - MAX_EVENT_AGE - 60)
    decisions = await send(meta(rec), [full_event(event_id="a"), stale,
                                       full_event(event_id="b")])
    assert decisions[0] == decisions[2] == Sent()
    assert isinstance(decisions[1], GiveUp) and "7 days" in decisions[1].error
    (req,) = rec.requests
    assert [d["event_id"] for d in orjson.loads(req.body)["data"]] == ["a", "b"]


async def test_a_4xx_kills_the_batch_with_the_body_and_5xx_retries(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    err = b'{"error":{"message":"Invalid parameter","code":100}}'
    rec.script("/v21.0/123456789012345/events", Reply(400, err), Reply(500))
    sink = meta(rec)
    two = [full_event(event_id="a"), full_event(event_id="b")]
    assert await send(sink, two) == [GiveUp("HTTP 400", err.decode())] * 2
    assert await send(sink, two) == [Retry("HTTP 500")] * 2
