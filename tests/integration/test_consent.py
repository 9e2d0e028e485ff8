"""[consent] required: no marketing pixel, no marketing sink, until the visitor agrees."""

from __future__ import annotations

import asyncio

import pytest

from proxy.demo.site import build_site
from tests.integration.harness import stack

RULES = """
[consent]
required = true
cookie = "cookie_consent"
granted = ["all", "marketing"]

[pixels.meta]
type = "meta"
pixel_id = "111"
paths = ["/**"]

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{job_id}/apply"
status = [200]
send_to = ["meta", "ats"]

[sinks.meta]
type = "meta"
pixel_id = "111"
access_token = "t"
api = "{recorder}/v21.0"

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "s"
"""


@pytest.fixture
async def s(tmp_path):
    async with stack(build_site, RULES, tmp=tmp_path) as st:
        yield st


async def page(s, cookie: str | None, gpc: bool = False) -> str:
    headers = {"Cookie": cookie} if cookie else {}
    if gpc:
        headers["Sec-GPC"] = "1"
    async with s.session(auto_decompress=True) as c:
        async with c.get("/jobs/1/apply", headers=headers) as r:
            assert r.status == 200
            return await r.text()


async def test_without_consent_no_pixel_and_marketing_sinks_suppressed(s) -> None:
    html = await page(s, None)
    assert "fbq(" not in html
    await s.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
    await asyncio.sleep(1)
    assert s.recorder.of("meta") == []
    metrics = s.edge.metrics.render()[0].decode()
    assert 'edge_conversions_total{outcome="suppressed",sink="meta"} 1.0' in metrics


async def test_consent_cookie_allows_pixel_and_meta(s) -> None:
    html = await page(s, "cookie_consent=marketing")
    assert "fbq('init'" in html
    await s.recorder.wait_for(lambda r: r.network == "meta", timeout=15)


async def test_global_privacy_control_counts_as_no(s) -> None:
    html = await page(s, "cookie_consent=all", gpc=True)
    assert "fbq(" not in html
