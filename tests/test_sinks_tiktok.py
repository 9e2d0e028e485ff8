"""TikTok Events API 1.3 over real sockets, against the demo recorder."""

from __future__ import annotations

import hashlib

from network_sinks import TTCLID, event, send, serve, tiktok

from proxy.conversions.backoff import GiveUp, Retry, Sent


async def test_documented_request_shape(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    e = event(event_time=1_700_000_000.9)
    assert await send(tiktok(base, test_event_code="TEST42"), [e]) == [Sent()]
    (post,) = rec.requests
    assert (post.method, post.path) == ("POST", "/open_api/v1.3/event/track/")
    assert post.headers["Access-Token"] == "tt-token"
    assert "Authorization" not in post.headers
    assert post.json() == {
        "event_source": "web", "event_source_id": "CABCDEF1234567890XYZ",
        "test_event_code": "TEST42",
        "data": [{
            "event": "SubmitApplication", "event_time": 1_700_000_000, "event_id": "e1",
            "user": {"ttclid": TTCLID, "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH",
                     "external_id": hashlib.sha256(b"lcid-1").hexdigest(),
                     "ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
            "page": {"url": "https://careers.acme.example/jobs/42/thanks"},
            "properties": {"content_type": "product",
                           "contents": [{"content_id": "42", "content_name": "Nurse (m/f/d)"}]},
        }],
    }


async def test_a_bare_server_event_sends_only_what_it_has(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    sink = tiktok(base, event_names={"Hire": "ApplicationApproval"})
    await send(sink, [event(name="Hire", click_ids={}, url=None, ttp=None, client_ip=None,
                            user_agent=None, job_id=None, job_name=None)])
    (data,) = rec.requests[0].json()["data"]
    assert data["event"] == "ApplicationApproval"
    assert data["user"] == {"external_id": hashlib.sha256(b"lcid-1").hexdigest()}
    assert "page" not in data and "properties" not in data


async def test_batches_of_at_most_1000(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    assert await send(tiktok(base), [event(event_id=f"e{i}") for i in range(1001)]) == [
        Sent()] * 1001
    assert [len(r.json()["data"]) for r in rec.requests] == [1000, 1]


async def test_errors_answered_as_200_with_a_code(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.fail_next("/open_api/", 200, body='{"code": 40100, "message": "Too many requests"}',
                  retry_after=3)
    assert await send(tiktok(base), [event()]) == [
        Retry("TikTok code 40100: Too many requests", 3.0)]
    rec.fail_next("/open_api/", 200, body='{"code": 51000, "message": "System error"}')
    assert await send(tiktok(base), [event()]) == [Retry("TikTok code 51000: System error")]
    (dead,) = await send(tiktok(base, access_token=""), [event()])
    assert isinstance(dead, GiveUp) and dead.error.startswith("TikTok code 40105")
    assert '"request_id"' in dead.body
    rec.fail_next("/open_api/", 503, retry_after=9)
    assert await send(tiktok(base), [event()]) == [Retry("HTTP 503", 9.0)]
    rec.fail_next("/open_api/", 400, body="bad")
    assert await send(tiktok(base), [event()]) == [GiveUp("HTTP 400", "bad")]
