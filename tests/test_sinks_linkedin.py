"""LinkedIn Conversions API over real sockets, against the demo recorder."""

from __future__ import annotations

import time

import orjson
from network_sinks import LI_FAT_ID, event, linkedin, send, serve

from proxy.conversions.backoff import GiveUp, Retry, Sent

URN = "urn:lla:llaPartnerConversion:104"


async def test_one_event_is_a_plain_create(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    e = event(event_time=time.time() - 30.5)
    assert await send(linkedin(base), [e]) == [Sent()]
    (post,) = rec.requests
    assert (post.method, post.path, post.status) == ("POST", "/rest/conversionEvents", 201)
    assert post.headers["Authorization"] == "Bearer li-token"
    assert post.headers["LinkedIn-Version"] == "202603"
    assert post.headers["X-Restli-Protocol-Version"] == "2.0.0"
    assert "X-RestLi-Method" not in post.headers
    assert post.json() == {
        "conversion": URN, "conversionHappenedAt": int(e.event_time * 1000),
        "user": {"userIds": [{"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID",
                              "idValue": LI_FAT_ID}]},
        "eventId": "e1"}


async def test_several_are_one_batch_create_decided_per_element(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.ads.linkedin_rejects.add("bad")
    sink = linkedin(base, event_names={"Hire": URN.replace("104", "200")})
    events = [event(), event(event_id="bad"), event(event_id="h", name="Hire")]
    ok, dead, hire = await send(sink, events)
    assert ok == hire == Sent()
    assert dead == GiveUp("HTTP 400", orjson.dumps(
        {"status": 400, "message": "rejected for this test"}).decode())
    (post,) = rec.requests
    assert post.headers["X-RestLi-Method"] == "BATCH_CREATE" and post.status == 200
    elements = post.json()["elements"]
    assert [e["eventId"] for e in elements] == ["e1", "bad", "h"]
    assert elements[2]["conversion"] == "urn:lla:llaPartnerConversion:200"


async def test_statuses_retry_after_and_bodies(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.fail_next("/rest/", 429, retry_after=5)
    rec.fail_next("/rest/", 500)
    assert await send(linkedin(base), [event()]) == [Retry("HTTP 429", 5.0)]
    assert await send(linkedin(base), [event()]) == [Retry("HTTP 500")]
    (dead,) = await send(linkedin(base, api_version="2026"), [event()])
    assert dead.error == "HTTP 400" and "VERSION_MISSING" in dead.body
    (dead,) = await send(linkedin(base, access_token=""), [event()])
    assert dead.error == "HTTP 401" and "INVALID_ACCESS_TOKEN" in dead.body


async def test_a_visitor_without_li_fat_id_is_given_up_unsent(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    assert await send(linkedin(base), [event(click_ids={"gclid": "g"})]) == [
        GiveUp("no li_fat_id click id")]
    assert rec.requests == []
