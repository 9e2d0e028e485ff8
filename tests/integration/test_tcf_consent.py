"""[consent] tcf = true through a real proxy: the visitor's euconsent-v2 TC string decides
which pixels are injected, which sinks are called (the rest counted as suppressed) and
which cookies of ours are set."""

from __future__ import annotations

import asyncio
import re

import pytest

from proxy.demo.site import build_site
from proxy.handoff import carry_cookie
from proxy.pixels import BrowserEvent
from tests.integration.harness import Stack, stack
from tests.tcf_strings import ALL_PURPOSES, GOOGLE, tc_string

TLR = "5f0c3b7e-2b1a-4c8e-9d5f-0a1b2c3d4e5f"
RULES = f"""
[consent]
tcf = true

[pixels.meta]
type = "meta"
pixel_id = "111"

[pixels.tt]
type = "tiktok"
pixel_code = "CJMB7ERC77U2JVNG7RF0"

[pixels.gads]
type = "google"
tag_id = "AW-123456789"
send_to = {{ ConversationStart = "AW-123456789/start" }}
tcf_vendor = {GOOGLE}

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{{job_id}}/apply"
status = [200]
send_to = ["meta", "ads", "ats"]

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{{job_id}}/apply"
status = [303]
send_to = ["ats"]

[sinks.meta]
type = "meta"
pixel_id = "111"
access_token = "t"
api = "{{recorder}}/v21.0"

[sinks.ads]
type = "http"
url = "{{recorder}}/appcast/conversion?id={{event_id}}"
tcf_vendor = {GOOGLE}

[sinks.ats]
type = "webhook"
url = "{{recorder}}/hooks/ats"
secret = "s"
"""
DECLINED = tc_string(purposes=[2, 3, 4, 7, 9, 10], vendors=[GOOGLE])      # no purpose 1
ACCEPTED = tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE, 1000])
NO_GOOGLE = tc_string(purposes=ALL_PURPOSES, vendors=[1000])


@pytest.fixture
async def s(tmp_path):
    async with stack(build_site, RULES, tmp=tmp_path) as st:
        yield st


async def apply_page(s: Stack, tc: str | None) -> str:
    headers = {"Cookie": f"euconsent-v2={tc}"} if tc is not None else {}
    async with s.session(auto_decompress=True) as c:
        async with c.get("/jobs/1/apply", headers=headers) as r:
            assert r.status == 200
            return await r.text()


def metric(s: Stack, sink: str, outcome: str) -> float:
    text = s.edge.metrics.render()[0].decode()
    m = re.search(rf'edge_conversions_total{{outcome="{outcome}",sink="{sink}"}} (\S+)', text)
    return float(m.group(1)) if m else 0.0


async def settled(s: Stack) -> None:
    """The webhook (not marketing) always gets the event: once it has, the dispatcher
    has had its turn at every sink of the same submit."""
    await s.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
    await asyncio.sleep(0.5)


async def test_declined_string_suppresses_every_pixel_and_marketing_sink(s) -> None:
    html = await apply_page(s, DECLINED)
    assert "careersEdge" not in html and "fbq(" not in html and "ttq" not in html
    await settled(s)
    assert s.recorder.of("meta") == [] and s.recorder.of("appcast") == []
    assert metric(s, "meta", "suppressed") == 1 and metric(s, "ads", "suppressed") == 1
    assert metric(s, "ats", "queued") == 1


async def test_accepted_string_lets_pixels_and_sinks_through(s) -> None:
    html = await apply_page(s, ACCEPTED)
    assert "fbq('init'" in html and 'ttq.load("CJMB7ERC77U2JVNG7RF0")' in html
    assert "gtag('config',\"AW-123456789\")" in html
    await s.recorder.wait_for(lambda r: r.network == "meta", timeout=15)
    [ads] = await s.recorder.wait_for_all(lambda r: r.network == "appcast", timeout=15)
    [hook] = await s.recorder.wait_for_all(lambda r: r.network == "webhook", timeout=15)
    # one event id: the page's browser call, the vendor-gated sink and the webhook
    assert ads.query["id"] == hook.json()["event_id"]
    assert f'"event_id":"{hook.json()["event_id"]}"' in html
    assert metric(s, "meta", "suppressed") == 0 and metric(s, "ads", "suppressed") == 0


async def test_vendor_without_consent_is_suppressed_alone(s) -> None:
    html = await apply_page(s, NO_GOOGLE)
    assert "fbq('init'" in html and "ttq.load(" in html
    assert "gtag(" not in html                      # the google pixel needs vendor 755
    await s.recorder.wait_for(lambda r: r.network == "meta", timeout=15)
    await settled(s)
    assert s.recorder.of("appcast") == []
    assert metric(s, "ads", "suppressed") == 1 and metric(s, "meta", "suppressed") == 0


OURS = {"linksClickedId", "ce_attr", "_fbc", "_fbp", "ce_events"}


def ours(headers) -> list[str]:
    """Our Set-Cookie values (the demo site sets its own session cookies too)."""
    return [v for v in headers.getall("Set-Cookie", []) if v.split("=", 1)[0] in OURS]


async def test_without_purpose_one_only_links_clicked_id_is_set(s) -> None:
    async with s.session() as c:
        jar = {"euconsent-v2": DECLINED}
        async with c.get(f"/jobs/1?tlr_sid={TLR}&fbclid=IwAR0abc", cookies=jar) as r:
            assert r.status == 200
            assert [v.split("=", 1)[0] for v in ours(r.headers)] == ["linksClickedId"]
        # an application redirect carries browser events on: not without consent, not
        # even one already carried from before
        carried = carry_cookie([BrowserEvent("ConversationStart", "c" * 32, {})], False)
        carry = carried.split(";")[0].split("=", 1)[1]
        async with c.post("/jobs/1/apply", data={"job_title": "Welder", "name": "Ada",
                                                 "email": "a@b.c"},
                          cookies={**jar, "ce_events": carry}, allow_redirects=False) as r:
            assert r.status == 303
            [cleared] = ours(r.headers)        # the carried event is dropped, not passed on
            assert cleared.startswith("ce_events=;") and "Max-Age=0" in cleared
        # an attribution cookie from before is expired, never read
        async with c.get("/jobs/1", cookies={**jar, "ce_attr": "old"}) as r:
            [expired] = ours(r.headers)
            assert expired.startswith("ce_attr=;") and "Max-Age=0" in expired


async def test_accepted_string_sets_our_cookies(s) -> None:
    async with s.session() as c:
        async with c.get(f"/jobs/1?tlr_sid={TLR}&fbclid=IwAR0abc",
                         cookies={"euconsent-v2": ACCEPTED}) as r:
            names = {v.split("=", 1)[0] for v in ours(r.headers)}
    assert names == {"linksClickedId", "ce_attr", "_fbc", "_fbp"}


@pytest.mark.parametrize("hostile", [
    "%%%not-base64%%%", "COtybn4PA", "C" + "A" * 3000, DECLINED[:12] + "!!",
    tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE])[:-6],
])
async def test_hostile_string_is_no_consent_and_counted(s, hostile: str) -> None:
    html = await apply_page(s, hostile)
    assert "careersEdge" not in html
    text = s.edge.metrics.render()[0].decode()
    assert "edge_tcf_invalid_total 1.0" in text
    await settled(s)
    assert metric(s, "meta", "suppressed") == 1


async def test_fired_events_carry_the_visits_consent_mode(tmp_path) -> None:
    """What the google_ads sink reads: the outbox row's event, before any delivery."""
    async with stack(build_site, RULES, tmp=tmp_path, dispatch=False) as st:
        await apply_page(st, tc_string(purposes=[1, 3, 4], vendors=[GOOGLE]))   # no purpose 7
        rows = await st.edge.outbox.list_rows()
    assert {r.sink for r in rows} == {"meta", "ats"}       # ads: vendor 755 lacks purpose 7
    assert {tuple(sorted(r.event.consent_mode.items())) for r in rows} == {
        (("ad_personalization", "GRANTED"), ("ad_user_data", "DENIED"))}
