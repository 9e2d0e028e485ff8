"""Google Ads uploadClickConversions over real sockets, against the demo recorder."""

from __future__ import annotations

from urllib.parse import parse_qs

from network_sinks import CUSTOMER, GCLID, event, google_ads, send, serve

from proxy.attribution.consent import Consent
from proxy.config.model import ConsentSection
from proxy.conversions.backoff import GiveUp, Retry, Sent
from proxy.conversions.sinks import build_sink
from proxy.conversions.sinks.google_ads import date_time
from tests.tcf_strings import GOOGLE, tc_string

ACTION = f"customers/{CUSTOMER}/conversionActions/555"
PATH = f"/v25/customers/{CUSTOMER}:uploadClickConversions"


STRICT = Consent(ConsentSection(required=True))
TCF = Consent(ConsentSection(tcf=True))


async def test_documented_request_shape(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    sink = google_ads(base, login_customer_id="9876543210", time_zone="Europe/Berlin",
                      event_names={"Hire": "777"})
    # Consent Mode as the visit decided it: agreed, refused (GPC), never asked, and a TC
    # string with purposes 1 and 7 but not 3 and 4 (user data yes, personalisation no).
    agreed = STRICT.decide("all", False).event_signals()
    refused = STRICT.decide("all", True).event_signals()
    tcf = TCF.decide(None, False, tc_string(purposes=[1, 7], vendors=[GOOGLE])).event_signals()
    events = [
        event(event_time=1_700_000_000, consent_mode=agreed),
        event(event_id="e2", click_ids={"gbraid": "gb-1", "wbraid": "wb-1"},
              consent_mode=refused),
        event(event_id="e3", name="Hire", click_ids={"wbraid": "wb-2"}),
        event(event_id="e4", consent_mode=tcf),
    ]
    assert await send(sink, events) == [Sent()] * 4
    token, post = rec.requests
    assert token.path == "/oauth/token" and parse_qs(token.text) == {
        "grant_type": ["refresh_token"], "client_id": ["gid"], "client_secret": ["gsecret"],
        "refresh_token": ["1//refresh"]}
    assert (post.method, post.path, post.status) == ("POST", PATH, 200)
    assert post.headers["developer-token"] == "devtok"
    assert post.headers["login-customer-id"] == "9876543210"
    assert post.headers["Authorization"].startswith("Bearer at-")
    body = post.json()
    assert body["partialFailure"] is True
    first, second, third, fourth = body["conversions"]
    assert first == {"gclid": GCLID, "conversionAction": ACTION,
                     "conversionDateTime": "2023-11-14 23:13:20+01:00", "orderId": "e1",
                     "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}}
    assert second["gbraid"] == "gb-1" and "wbraid" not in second and "gclid" not in second
    assert second["consent"] == {"adUserData": "DENIED", "adPersonalization": "DENIED"}
    assert third["wbraid"] == "wb-2" and "consent" not in third
    assert third["conversionAction"] == f"customers/{CUSTOMER}/conversionActions/777"
    assert fourth["consent"] == {"adUserData": "GRANTED", "adPersonalization": "DENIED"}


def test_conversion_date_time_in_any_zone():
    assert date_time(1_700_000_000, "UTC") == "2023-11-14 22:13:20+00:00"
    assert date_time(1_700_000_000, "America/New_York") == "2023-11-14 17:13:20-05:00"
    assert date_time(1_700_000_000, "Asia/Kolkata") == "2023-11-15 03:43:20+05:30"
    assert date_time(1_690_000_000.9, "Europe/Berlin") == "2023-07-22 06:26:40+02:00"


async def test_partial_failure_one_dead_with_its_reason_the_rest_sent(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.ads.google_rejects["expired-click"] = "EXPIRED_CLICK"
    events = [event(), event(event_id="e2", click_ids={"gclid": "expired-click"}),
              event(event_id="e3", click_ids={"gclid": "another"})]
    ok, dead, ok2 = await send(google_ads(base), events)
    assert ok == ok2 == Sent()
    assert isinstance(dead, GiveUp)
    assert dead.error == ("Google Ads conversionUploadError EXPIRED_CLICK: "
                          "The click was refused: EXPIRED_CLICK")
    assert '"index":1' in dead.body
    (post,) = rec.of("google_ads")
    assert len(post.json()["conversions"]) == 3


async def test_an_upload_repeated_by_order_id_counts_as_sent(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    client = build_sink(google_ads(base))
    assert await send(None, [event()], client) == [Sent()]
    # A retry after a timeout: Google answers CLICK_CONVERSION_ALREADY_EXISTS for it.
    assert await send(None, [event()], client) == [Sent()]
    assert [r.json()["conversions"][0]["orderId"] for r in rec.of("google_ads")] == ["e1"] * 2
    assert rec.ads.google_orders == {(f"customers/{CUSTOMER}/conversionActions/555", "e1")}
    rec.ads.google_rejects[GCLID] = "EXPIRED_CLICK"        # another reason stays dead
    (dead,) = await send(None, [event(event_id="e9")], client)
    assert isinstance(dead, GiveUp) and "EXPIRED_CLICK" in dead.error


async def test_token_cached_and_refreshed_once_on_401(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    client = build_sink(google_ads(base))
    for i in range(2):
        assert await send(None, [event(event_id=f"a{i}")], client) == [Sent()]
    assert len(rec.of("oauth")) == 1
    rec.ads.revoke_tokens()
    assert await send(None, [event(event_id="b")], client) == [Sent()]
    assert [r.status for r in rec.of("google_ads")] == [200, 200, 401, 200]
    assert len(rec.of("oauth")) == 2


async def test_a_revoked_refresh_token_is_dead_and_a_token_outage_retried(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.fail_next("/oauth/", 400, body='{"error": "invalid_grant"}')
    (dead,) = await send(google_ads(base), [event()])
    assert isinstance(dead, GiveUp) and "OAuth token refused" in dead.error
    assert dead.body == '{"error": "invalid_grant"}'
    rec.fail_next("/oauth/", 500)
    assert await send(google_ads(base), [event()]) == [Retry("OAuth token: HTTP 500")]
    assert rec.of("google_ads") == []


async def test_429_retry_after_and_a_refused_request_dead_with_the_body(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    rec.fail_next("/v25/", 429, retry_after=60)
    assert await send(google_ads(base), [event(), event(event_id="x")]) == [
        Retry("HTTP 429", 60.0)] * 2
    rec.fail_next("/v25/", 503)
    assert await send(google_ads(base), [event()]) == [Retry("HTTP 503")]
    (dead,) = await send(google_ads(base, developer_token=""), [event()])
    # Without a developer token Google answers 401 twice: no new token helps.
    assert isinstance(dead, GiveUp) and dead.error == "HTTP 401"
    assert "developer-token" in dead.body


async def test_visitors_without_a_google_click_or_action_are_given_up_alone(aiohttp_server):
    rec, base = await serve(aiohttp_server)
    sink = google_ads(base, conversion_action=None, event_names={"ApplicationCompleted": "9"})
    decisions = await send(sink, [event(click_ids={"ttclid": "x"}), event(name="Hire"),
                                  event(event_id="ok")])
    assert decisions[0] == GiveUp("no gclid, gbraid or wbraid click id")
    assert isinstance(decisions[1], GiveUp) and "conversion_action" in decisions[1].error
    assert decisions[2] == Sent()
    assert len(rec.of("google_ads")[0].json()["conversions"]) == 1
