"""A visitor from Indeed, Google, LinkedIn and TikTok at once applies through a real
proxy: each of the four networks gets one conversion at the recorder, sharing one
event id, with the click ids and consent the visitor brought."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
from yarl import URL

from proxy.demo.site import build_site
from tests.integration.harness import stack

RULES = """
[consent]
required = true

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{job_id}/apply"
status = [303]
job_name = "form:job_title"
send_to = ["indeed", "google", "linkedin", "tiktok"]

[sinks.indeed]
type = "indeed"
api = "{recorder}"
token_url = "{recorder}/oauth/v2/tokens"
client_id = "indeed-client"
client_secret = "${INDEED_SECRET}"
guid = "partner-guid"

[sinks.google]
type = "google_ads"
api = "{recorder}"
token_url = "{recorder}/oauth/token"
customer_id = "123-456-7890"
developer_token = "dev-token"
client_id = "google-client"
client_secret = "google-secret"
refresh_token = "${GOOGLE_REFRESH_TOKEN}"
conversion_action = "555"

[sinks.linkedin]
type = "linkedin"
api = "{recorder}"
access_token = "li-token"
conversion = "104"

[sinks.tiktok]
type = "tiktok"
api = "{recorder}"
access_token = "tt-token"
pixel_code = "CABCDEF1234567890XYZ"
"""
ENV = {"INDEED_SECRET": "indeed-secret", "GOOGLE_REFRESH_TOKEN": "1//refresh"}
LANDING = ("/jobs/2?ittk=ittk-1a2b3c&gclid=Cj0KCQ-gclid&li_fat_id=li-fat-1&ttclid=E.C.P.tt-1"
           "&utm_source=x")
TTP = "2F7h37YkS1j57AYSKTI7IHhJPYH"


def form() -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("job_title", "Backend Engineer")
    data.add_field("name", "Ada Lovelace")
    data.add_field("email", "ada@example.com")
    data.add_field("resume", b"%PDF-" + bytes(1024), filename="cv.pdf",
                   content_type="application/pdf")
    return data


async def test_one_application_reaches_each_of_the_four_networks_once(tmp_path) -> None:
    async with stack(build_site, RULES, tmp=tmp_path, env=ENV) as s:
        async with s.session(auto_decompress=True) as c:
            c.cookie_jar.update_cookies({"cookie_consent": "all", "_ttp": TTP},
                                        URL(s.proxy_url))
            async with c.get(LANDING) as r:
                assert r.status == 200
            async with c.post("/jobs/2/apply", data=form(), allow_redirects=False) as r:
                assert r.status == 303
            visitor = next(m.value for m in c.cookie_jar if m.key == "linksClickedId")
            for network in ("indeed", "google_ads", "linkedin", "tiktok"):
                await s.recorder.wait_for(lambda r, n=network: r.network == n, timeout=15)
            # The same application again: deduped, nothing more is sent.
            async with c.post("/jobs/2/apply", data=form(), allow_redirects=False) as r:
                assert r.status == 303
            await asyncio.sleep(1.0)

        rec = s.recorder
        (indeed,), (google,), (linkedin,), (tiktok,) = (
            rec.of(n) for n in ("indeed", "google_ads", "linkedin", "tiktok"))
        assert {r.status for r in (indeed, google, linkedin, tiktok)} <= {200, 201}
        assert len(rec.of("oauth")) == 2                 # one token each for Indeed, Google

        (i,) = indeed.json()
        assert (i["event"], i["ittk"], i["guid"], i["jobUid"]) == (
            "APPLY_COMPLETE", "ittk-1a2b3c", "partner-guid", "2")
        (g,) = google.json()["conversions"]
        assert g["gclid"] == "Cj0KCQ-gclid"
        assert g["consent"] == {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
        li = linkedin.json()
        assert li["user"]["userIds"][0]["idValue"] == "li-fat-1"
        (t,) = tiktok.json()["data"]
        assert t["user"]["ttclid"] == "E.C.P.tt-1" and t["user"]["ttp"] == TTP
        assert t["user"]["external_id"] == hashlib.sha256(visitor.encode()).hexdigest()
        assert t["user"]["ip"] == "127.0.0.1" and t["event"] == "SubmitApplication"
        # One event, one id: the order id, LinkedIn's eventId and TikTok's event_id.
        assert g["orderId"] == li["eventId"] == t["event_id"]
        assert abs(i["eventTimeMs"] - li["conversionHappenedAt"]) < 1
        assert s.recorder.of("meta") == []
