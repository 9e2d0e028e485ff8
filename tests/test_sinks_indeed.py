"""Indeed Conversion Tracking API over real sockets, against the demo recorder."""

from __future__ import annotations

from urllib.parse import parse_qs

from network_sinks import ITTK, event, indeed, send, serve

from proxy.conversions.backoff import GiveUp, Retry, Sent
from proxy.conversions.sinks import build_sink


async def test_documented_request_shape(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    done = event(event_time=1_700_000_000.25)
    landed = event(name="ConversationStart", event_id="e0", job_id=None)
    assert await send(indeed(base), [landed, done]) == [Sent(), Sent()]
    token, post = rec.requests
    assert (token.method, token.path, token.network) == ("POST", "/oauth/v2/tokens", "oauth")
    assert parse_qs(token.text) == {"grant_type": ["client_credentials"],
                                    "client_id": ["cid"], "client_secret": ["csecret"]}
    assert (post.method, post.path, post.status) == (
        "POST", "/enterprise/conversions/v1/events", 200)
    assert post.headers["Authorization"].startswith("Bearer at-")
    assert post.headers["Content-Type"] == "application/json"
    assert post.json() == [
        {"event": "JOB_PAGE_LANDED", "guid": "partner-guid", "ittk": ITTK,
         "eventTimeMs": int(landed.event_time * 1000)},
        {"event": "APPLY_COMPLETE", "guid": "partner-guid", "ittk": ITTK,
         "eventTimeMs": 1_700_000_000_250, "jobUid": "42"},
    ]


async def test_test_fire_for_preview_visitors_and_while_onboarding(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    await send(indeed(base), [event(), event(event_id="p", preview=True)])
    assert ["testFire" in e for e in rec.of("indeed")[0].json()] == [False, True]
    await send(indeed(base, test_fire=True), [event()])
    assert rec.of("indeed")[1].json()[0]["testFire"] is True


async def test_event_names_and_events_indeed_does_not_take(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    sink = indeed(base, event_names={"Hire": "APPLY_COMPLETE"})
    decisions = await send(sink, [event(name="Hire"), event(name="PageView"),
                                  event(click_ids={})])
    assert decisions[0] == Sent()
    assert isinstance(decisions[1], GiveUp) and "event_names" in decisions[1].error
    assert decisions[2] == GiveUp("no ittk click id")
    (post,) = rec.of("indeed")
    assert [e["event"] for e in post.json()] == ["APPLY_COMPLETE"]


async def test_token_is_cached_and_fetched_again_once_on_401(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    client = build_sink(indeed(base))
    assert await send(None, [event()], client) == [Sent()]
    assert await send(None, [event(event_id="e2")], client) == [Sent()]
    assert len(rec.of("oauth")) == 1 and len(rec.of("indeed")) == 2
    rec.ads.revoke_tokens()                       # as if it had expired early
    assert await send(None, [event(event_id="e3")], client) == [Sent()]
    assert [r.status for r in rec.of("indeed")] == [200, 200, 401, 200]
    assert len(rec.of("oauth")) == 2
    first, second = rec.of("indeed")[2:]
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert first.body == second.body


async def test_a_second_401_is_dead_with_the_body(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.fail_next("/enterprise/", 401, times=2, body='{"error":"invalid_token"}')
    assert await send(indeed(base), [event()]) == [GiveUp("HTTP 401", '{"error":"invalid_token"}')]
    assert len(rec.of("oauth")) == 2 and len(rec.of("indeed")) == 2


async def test_token_endpoint_refusal_is_dead_and_its_outage_retried(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.ads.clients = {"cid": "the-real-secret"}
    (dead,) = await send(indeed(base), [event()])
    assert isinstance(dead, GiveUp) and dead.error.startswith("OAuth token refused by")
    assert "HTTP 401" in dead.error and "invalid_client" in dead.body
    assert rec.of("indeed") == []
    rec.fail_next("/oauth/", 503, retry_after=30)
    assert await send(indeed(base, client_secret="the-real-secret"), [event()]) == [
        Retry("OAuth token: HTTP 503", 30.0)]


async def test_429_waits_for_retry_after_and_4xx_is_dead_with_the_body(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    client = build_sink(indeed(base))
    rec.fail_next("/enterprise/", 429, retry_after=120)
    assert await send(None, [event(), event(event_id="b")], client) == [
        Retry("HTTP 429", 120.0)] * 2
    rec.fail_next("/enterprise/", 503)
    assert await send(None, [event()], client) == [Retry("HTTP 503")]
    # A request Indeed refuses: its own checks, not a scripted answer.
    bad = build_sink(indeed(base, guid=""))
    (dead,) = await send(None, [event()], bad)
    assert dead == GiveUp("HTTP 400", '{"error": "events[0]: guid is required"}')


async def test_batches_of_at_most_100(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    events = [event(event_id=f"e{i}") for i in range(201)]
    assert await send(indeed(base), events) == [Sent()] * 201
    assert [len(r.json()) for r in rec.of("indeed")] == [100, 100, 1]
    assert len(rec.of("oauth")) == 1
