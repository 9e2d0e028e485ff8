"""A visitor's whole journey through the proxy, to each ad network (issues: attribution,
detection and delivery). Real demo site upstream, real recorder as the networks."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

import aiohttp
import pytest

from proxy.demo.site import build_site
from tests.integration.harness import stack

PIXEL = "123456789012345"
RULES = """
[pixels.meta]
type = "meta"
pixel_id = "%(pixel)s"
paths = ["/**"]

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{job_id}/apply"
status = [200]
job_name = "css:h1"
send_to = ["meta", "ats"]

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{job_id}/apply"
status = [303]
location = "/jobs/*/thanks*"
job_name = "form:job_title"
send_to = ["talroo", "meta", "ats"]

[sinks.talroo]
type = "talroo"
url = "{recorder}/conversion2.php"
events = { Hire = "{recorder}/conversion3.php" }

[sinks.meta]
type = "meta"
pixel_id = "%(pixel)s"
access_token = "tok-123"
api = "{recorder}/v21.0"
event_names = { ApplicationCompleted = "SubmitApplication" }

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-1"

[api]
token = "api-secret"

[redirect]
allow = ["https://wa.me/*"]
send_to = ["ats"]

[feed]
enabled = true
publisher = "Acme GmbH"
""".replace("%(pixel)s", PIXEL)

TLR = str(uuid.uuid4())
FBCLID = "IwAR0xYz-Case_Sensitive"


@pytest.fixture
async def s(tmp_path):
    async with stack(build_site, RULES, tmp=tmp_path) as st:
        yield st


def apply_form(title: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("job_title", title)
    form.add_field("name", "Ada Lovelace")
    form.add_field("email", "ada@example.com")
    form.add_field("resume", b"%PDF-" + bytes(200 * 1024), filename="cv.pdf",
                   content_type="application/pdf")
    return form


async def walk(c: aiohttp.ClientSession) -> tuple[str, str]:
    """Land, view a job and its form, apply, follow the 303: the thank-you HTML."""
    async with c.get(f"/jobs/2?tlr_sid={TLR}&fbclid={FBCLID}") as r:
        assert r.status == 200
        landing = await r.text()
        assert "fbq('init'" in landing
    async with c.get("/jobs/2/apply") as r:
        assert r.status == 200
        await r.read()
    async with c.post("/jobs/2/apply", data=apply_form("Backend Engineer"),
                      allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        location = r.headers["Location"]
        assert location.startswith(c._base_url.human_repr().rstrip("/") if c._base_url
                                   else "http")
    async with c.get(location) as r:
        assert r.status == 200
        return location, await r.text()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_application_reaches_every_network_once(s) -> None:
    async with s.session(auto_decompress=True) as c:
        location, thanks = await walk(c)
        visitor = next(m.value for m in c.cookie_jar if m.key == "linksClickedId")
        await s.recorder.wait_for_all(lambda r: r.network == "webhook", count=2, timeout=15)
        await s.recorder.wait_for_all(lambda r: r.network == "talroo", count=1, timeout=15)
        # a reload of the thank-you page and a second submission count once
        async with c.get(location) as r:
            await r.read()
        async with c.post("/jobs/2/apply", data=apply_form("Backend Engineer"),
                          allow_redirects=False) as r:
            assert r.status == 303
        await asyncio.sleep(1.5)

    talroo = s.recorder.of("talroo")
    assert len(talroo) == 1
    assert talroo[0].path.endswith("/conversion2.php")
    assert talroo[0].query["tlr_sid"] == TLR and talroo[0].query["Link"] == "true"

    meta_events = [e for r in s.recorder.of("meta") for e in r.json()["data"]]
    completed = [e for e in meta_events if e["event_name"] == "SubmitApplication"]
    assert len(completed) == 1
    ev = completed[0]
    assert ev["action_source"] == "website"
    assert ev["event_source_url"].endswith("/jobs/2/apply")
    assert isinstance(ev["event_time"], int)
    ud = ev["user_data"]
    assert ud["client_ip_address"] == "127.0.0.1"
    assert ud["client_user_agent"]
    assert ud["fbc"].startswith("fb.") and ud["fbc"].endswith("." + FBCLID) or \
        FBCLID in ud["fbc"]
    assert ud["fbp"].startswith("fb.")
    assert ud["external_id"] in ([sha256(visitor)], sha256(visitor))
    assert ev["custom_data"]["linksClickedId"] == visitor
    assert ev["custom_data"]["jobName"] == "Backend Engineer"
    assert s.recorder.of("meta")[0].json()["access_token"] == "tok-123"

    # the thank-you page tracks the same event, same id, same (mapped) name
    assert ev["event_id"] in thanks
    assert f'"event":"ApplicationCompleted","event_id":"{ev["event_id"]}"' in thanks
    assert '{"ApplicationCompleted":"SubmitApplication"}[e.event]' in thanks   # Meta's tracker

    hooks = s.recorder.of("webhook")
    assert sorted(h.json()["event"] for h in hooks) == ["ApplicationCompleted",
                                                          "ConversationStart"]
    for h in hooks:
        assert h.signature_valid("whsec-1")
        assert h.json()["linksClickedId"] == visitor
        assert h.json()["click_ids"]["tlr_sid"] == TLR


async def test_click_ids_are_stripped_and_cookies_signed(s) -> None:
    async with s.session(auto_decompress=True) as c:
        async with c.get(f"/jobs/1?utm_source=talroo&tlr_sid={TLR}&x=%27a%27",
                         allow_redirects=False) as r:
            assert r.status == 200
            cookies = r.headers.getall("Set-Cookie")
        names = {ck.split("=", 1)[0] for ck in cookies}
        assert {"linksClickedId", "ce_attr"} <= names
        attr = next(ck for ck in cookies if ck.startswith("ce_attr="))
        assert "HttpOnly" in attr and "SameSite=Lax" in attr
        visitor = next(ck for ck in cookies if ck.startswith("linksClickedId="))
        assert re.match(r"linksClickedId=[0-9a-f]{32};", visitor)
        # a forged attribution cookie is ignored and counted
        vid = visitor.split(";")[0].split("=", 1)[1]
        async with s.session(cookie_jar=aiohttp.DummyCookieJar()) as bare:
            async with bare.get("/jobs/1", headers={
                    "Cookie": f"linksClickedId={vid}; ce_attr=eyJmYWtlIjoxfQ.AAAA"}) as r:
                assert r.status == 200
    metrics = s.edge.metrics.render()[0].decode()
    assert 'edge_clicks_captured_total{param="tlr_sid"} 1.0' in metrics
    assert "edge_cookies_rejected_total 1.0" in metrics


async def test_hostile_click_ids_are_ignored_and_counted(s) -> None:
    async with s.session(auto_decompress=True) as c:
        for bad in ("%0d%0aSet-Cookie:%20x=1", "<script>alert(1)</script>", "a" * 5000,
                    "not-a-uuid"):
            async with c.get(f"/jobs/1?tlr_sid={bad}") as r:
                body = await r.text()
                assert r.status == 200
                assert "alert(1)" not in body and "x=1" not in "".join(
                    r.headers.getall("Set-Cookie", []))
    metrics = s.edge.metrics.render()[0].decode()
    assert 'edge_clicks_rejected_total{param="tlr_sid"} 4.0' in metrics


async def test_events_api(s) -> None:
    async with s.session(auto_decompress=True) as c:
        async with c.get(f"/jobs/3?tlr_sid={TLR}") as r:
            await r.read()
        visitor = next(m.value for m in c.cookie_jar if m.key == "linksClickedId")
        await s.edge.journeys.flush()
        api = "/_edge/api/events"
        async with c.post(api, json={"event": "Hire", "linksClickedId": visitor}) as r:
            assert r.status == 401
        auth = {"Authorization": "Bearer api-secret"}
        async with c.post(api, data=b"{not json", headers=auth) as r:
            assert r.status == 400
            assert "error" in await r.json()
        async with c.post(api, json={"event": "Hire", "linksClickedId": "f" * 32},
                          headers=auth) as r:
            assert r.status == 404
        body = {"event": "Hire", "linksClickedId": visitor, "jobName": "Backend Engineer",
                "event_id": "hire-1"}
        async with c.post(api, json=body, headers=auth) as r:
            assert r.status == 202
            assert (await r.json())["event_id"] == "hire-1"
        async with c.post(api, json=body, headers=auth) as r:    # idempotent
            assert r.status == 202
    await s.recorder.wait_for(lambda r: r.path.endswith("/conversion3.php"), timeout=15)
    await asyncio.sleep(1)
    hires = [r for r in s.recorder.of("talroo") if r.path.endswith("/conversion3.php")]
    assert len(hires) == 1
    assert hires[0].query["tlr_sid"] == TLR and hires[0].query["Link"] == "true"


async def test_feed_lists_jobs_seen_through_the_proxy(s) -> None:
    import xml.etree.ElementTree as ET
    async with s.session(auto_decompress=True) as c:
        for job in (1, 2):
            async with c.get(f"/jobs/{job}") as r:
                await r.read()
        await s.edge.feed.idle()
        async with c.get("/_edge/feed.xml") as r:
            assert r.status == 200
            etag = r.headers["ETag"]
            root = ET.fromstring(await r.read())
        async with c.get("/_edge/feed.xml", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
    assert root.findtext("publisher") == "Acme GmbH"
    urls = [j.findtext("url") for j in root.iter("job")]
    assert len(urls) == 2
    assert all(u.startswith(s.proxy_url + "/jobs/") for u in urls)
    assert all(j.findtext("title") for j in root.iter("job"))


async def test_redirect_page_fires_redirect_event(s) -> None:
    async with s.session(auto_decompress=True) as c:
        async with c.get("/_edge/go?to=https://evil.example/") as r:
            assert r.status == 400
        async with c.get("/_edge/go?to=https://wa.me.evil.example/") as r:
            assert r.status == 400
        async with c.get(f"/_edge/go?to=https://wa.me/4912345&tlr_sid={TLR}") as r:
            assert r.status == 200
            page = await r.text()
            assert "https://wa.me/4912345" in page
            assert "RedirectPage" in page
            assert "'nonce-" in r.headers["Content-Security-Policy"]
    hook = await s.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
    assert hook.json()["event"] == "RedirectPage"
    assert hook.json()["event_id"] in page
    assert hook.json()["click_ids"]["tlr_sid"] == TLR


async def test_event_source_url_is_the_page_the_form_was_sent_from(s) -> None:
    async with s.session(auto_decompress=True) as c:
        async with c.get(f"/jobs/4?tlr_sid={TLR}") as r:
            await r.read()
        form_page = f"{s.proxy_url}/jobs/4/apply?src=list"
        async with c.post("/jobs/4/apply", data=apply_form("Designer"), allow_redirects=False,
                          headers={"Referer": form_page}) as r:
            assert r.status == 303
        # a Referer from another origin is not believed
        async with c.post("/jobs/5/apply", data=apply_form("Designer"), allow_redirects=False,
                          headers={"Referer": "https://elsewhere.example/jobs/5/apply"}) as r:
            assert r.status == 303
    hooks = await s.recorder.wait_for_all(
        lambda r: r.network == "webhook" and r.json()["event"] == "ApplicationCompleted",
        count=2, timeout=15)
    urls = sorted(h.json()["url"] for h in hooks)
    assert urls == sorted([form_page, f"{s.proxy_url}/jobs/5/apply"])
