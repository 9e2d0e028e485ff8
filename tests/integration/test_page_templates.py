"""A job page served many times through the proxy: transformed once, filled in per visitor.

Against a real upstream: the third visitor of the same page is served from the kept
template (edge_page_templates_total counts it), each visitor still gets their own
linksClickedId and event ids in the pixel, the body is exactly what the streaming
transform gives, gzip pages too, and a page that changes is transformed afresh.
"""

from __future__ import annotations

import asyncio
import gzip
import re

from aiohttp import web
from multidict import CIMultiDict

from proxy.transform.html import HtmlTransform
from tests.integration.harness import stack

RULES = """
[pixels.meta]
type = "meta"
pixel_id = "111"
paths = ["/**"]
"""
PAGE = ("<!doctype html><html><head><title>Nurse</title></head><body>"
        "<a href='{origin}/jobs/1/apply'>Apply</a><p>v{version}</p></body></html>")


def job_site() -> tuple[web.Application, dict[str, int]]:
    state = {"version": 1}

    async def job(request: web.Request) -> web.Response:
        body = PAGE.format(origin=f"http://{request.host}", version=state["version"]).encode()
        if request.path.endswith(".broken"):
            return web.Response(body=b"\x1f\x8bnot gzip at all", content_type="text/html",
                                headers={"Content-Encoding": "gzip", "ETag": '"b1"'})
        if request.path.endswith(".gz"):
            return web.Response(body=gzip.compress(body, mtime=0), content_type="text/html",
                                headers={"Content-Encoding": "gzip"})
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/jobs/{name}", job)
    return app, state


async def as_new_visitors(st, path: str, times: int = 3) -> list[tuple[CIMultiDict[str], bytes]]:
    """`path` fetched `times` times, each by a new visitor: (headers, raw body) of each."""
    out = []
    for _ in range(times):
        async with st.session() as http:
            async with http.get(path) as r:
                assert r.status == 200
                out.append((CIMultiDict(r.headers), await r.read()))
    return out


def template_counts(metrics: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(
        r'edge_page_templates_total\{result="(\w+)"\} (\S+)', metrics)}


async def test_visitors_share_a_template_and_keep_their_own_ids(tmp_path) -> None:
    app, state = job_site()
    async with stack(app, RULES, tmp=tmp_path) as st:
        bodies, visitors = [], []
        for _ in range(4):
            async with st.session() as http:       # a new visitor each time
                async with http.get("/jobs/1") as r:
                    assert r.status == 200
                    bodies.append(await r.text())
                    visitors.append(r.cookies["linksClickedId"].value)
            counts = template_counts(await st.metrics())
        assert counts["hit"] >= 2
        assert len(set(visitors)) == 4
        for body, visitor in zip(bodies, visitors, strict=True):
            assert visitor in body and "fbq('init'" in body
            # Links point at the proxy, not the upstream.
            assert f"href='{st.proxy_url}/jobs/1/apply'" in body
            assert st.upstream_url not in body
        # Apart from the snippets, every visitor got the same document.
        stripped = {re.sub(r"<script.*?</script>|<noscript>.*?</noscript>", "", b, flags=re.S)
                    for b in bodies}
        assert len(stripped) == 1

        state["version"] = 2                    # the page changes upstream
        async with st.session() as http:
            async with http.get("/jobs/1") as r:
                assert "<p>v2</p>" in await r.text()


async def test_a_gzip_page_from_a_template_equals_the_streamed_transform(tmp_path) -> None:
    app, _ = job_site()
    async with stack(app, RULES, tmp=tmp_path) as st:
        headers, body = (await as_new_visitors(st, "/jobs/1.gz"))[-1]
        assert headers["Content-Encoding"] == "gzip"
        served = gzip.decompress(body)
        head = re.search(rb"<script[^>]*>.*?</script>", served, re.S)
        tail = re.search(rb"<noscript>.*?</noscript>", served, re.S)
        assert head is not None and tail is not None
        upstream = PAGE.format(origin=st.upstream_url, version=1).encode()
        t = HtmlTransform("identity", head.group(0), tail.group(0),
                          rewrite=(st.upstream_url.encode(), st.proxy_url.encode()))
        assert served == t.feed(upstream) + t.finish()


async def test_a_whole_page_goes_out_with_its_length(tmp_path) -> None:
    app, _ = job_site()
    async with stack(app, RULES, tmp=tmp_path) as st:
        for headers, body in await as_new_visitors(st, "/jobs/1"):
            assert "Transfer-Encoding" not in headers
            assert int(headers["Content-Length"]) == len(body)
            assert b"fbq('init'" in body


async def test_an_undecodable_page_is_served_as_the_upstream_sent_it(tmp_path) -> None:
    app, _ = job_site()
    async with stack(app, RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            async with http.get("/jobs/1.broken") as r:
                assert r.status == 200
                assert r.headers["Content-Encoding"] == "gzip"
                assert r.headers["ETag"] == '"b1"'            # not weakened: untouched
                assert await r.read() == b"\x1f\x8bnot gzip at all"
            assert 'edge_upstream_errors_total{kind="body"} 1.0' in await st.metrics()


FEED_ONLY = """
[feed]
enabled = true
publisher = "Acme GmbH"
"""
JOB_LD = ('<!doctype html><html><head><title>Nurse</title><script type="application/ld+json">'
          '{"@context": "https://schema.org", "@type": "JobPosting", "title": "Nurse",'
          ' "datePosted": "2026-11-01", "description": "Care.",'
          ' "hiringOrganization": {"@type": "Organization", "name": "Acme"}}'
          '</script></head><body><h1>Nurse</h1></body></html>')


async def test_the_feed_reads_a_page_once_a_minute_and_it_passes_through_between(
        tmp_path) -> None:
    async def job(request: web.Request) -> web.Response:
        return web.Response(text=JOB_LD, content_type="text/html", headers={"ETag": '"j1"'})

    app = web.Application()
    app.router.add_get("/jobs/{name}", job)
    async with stack(app, FEED_ONLY, tmp=tmp_path, proxy_extra="rewrite_links = false") as st:
        seen = await as_new_visitors(st, "/jobs/1", times=3)
        # The first response was read for the feed (its body went through the transform:
        # ETag weakened); the next ones within the minute pass through untouched.
        assert seen[0][0]["ETag"] == 'W/"j1"'
        for headers, body in seen[1:]:
            assert headers["ETag"] == '"j1"' and body == JOB_LD.encode()
        # The feed parses off the request path: on a busy machine the job lands a moment later.
        async with st.session() as http:
            for _ in range(200):
                async with http.get("/_edge/feed.xml") as r:
                    feed = await r.text()
                if "<job>" in feed:
                    break
                await asyncio.sleep(0.05)
            assert "<title><![CDATA[Nurse]]></title>" in feed
