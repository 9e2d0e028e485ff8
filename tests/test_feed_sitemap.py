"""The sitemap crawler against a real local upstream, and the sitemap parser."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.model import FeedSection
from proxy.feed.service import FeedService
from proxy.feed.sitemap import SitemapCrawler, SitemapParser

PUBLIC = "https://careers.acme.example"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str) -> str:
    items = "".join(f"<url><loc>{loc}</loc><lastmod>2024-05-01</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{items}</urlset>'


def index(*locs: str) -> str:
    items = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {NS}>{items}</sitemapindex>'


def job_page(n: int, origin: str) -> str:
    data = {"@context": "http://schema.org", "@type": "JobPosting", "title": f"Job {n}",
            "datePosted": "2024-05-01", "url": f"{origin}/jobs/{n}",
            "identifier": {"@type": "PropertyValue", "value": f"R{n}"}}
    return (f'<html><head><script type="application/ld+json">{json.dumps(data)}</script>'
            f"</head><body><h1>Job {n}</h1></body></html>")


def upstream_app(hits: list[str]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        origin = f"http://{request.host}"
        path = request.path
        if path == "/sitemap.xml":
            return web.Response(text=index(
                "/sitemaps/jobs-index.xml", f"{origin}/sitemap-pages.xml.gz",
                "https://evil.example/sitemap.xml", "/sitemap.xml", "/d1.xml"),
                content_type="application/xml")
        if path == "/sitemaps/jobs-index.xml":
            return web.Response(text=index("jobs.xml"), content_type="application/xml")
        if path == "/sitemaps/jobs.xml":
            return web.Response(text=urlset(
                f"{origin}/jobs/1", f"{PUBLIC}/jobs/2", f"{origin}/missing",
                f"{origin}/feed.json", "https://evil.example/jobs/9", f"{origin}/jobs/1"),
                content_type="application/xml")
        if path == "/sitemap-pages.xml.gz":
            body = gzip.compress(urlset(f"{origin}/jobs/3", f"{origin}/about").encode())
            return web.Response(body=body, content_type="application/gzip")
        if path in ("/d1.xml", "/d2.xml"):
            return web.Response(text=index("/d2.xml" if path == "/d1.xml" else "/d3.xml"),
                                content_type="application/xml")
        if path == "/d3.xml":
            return web.Response(text=urlset(f"{origin}/jobs/deep"),
                                content_type="application/xml")
        if path.startswith("/jobs/"):
            return web.Response(text=job_page(int(path.rsplit("/", 1)[1]), origin),
                                content_type="text/html")
        if path == "/about":
            return web.Response(text="<html><body>about</body></html>",
                                content_type="text/html")
        if path == "/feed.json":
            return web.json_response({"@type": "JobPosting"})
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_crawl_follows_nested_indexes_and_fetches_only_upstream_pages() -> None:
    hits: list[str] = []
    seen: dict[str, bytes] = {}
    async with TestServer(upstream_app(hits)) as server:
        origin = str(server.make_url("")).rstrip("/")

        async def collect(url: str, body: bytes) -> None:
            seen[url] = body

        crawler = SitemapCrawler(origin, collect, rate=1000, interval=3600,
                                 accept_origins=(PUBLIC,))
        fetched = await crawler.crawl_once()
    assert set(seen) == {f"{origin}/jobs/1", f"{origin}/jobs/2", f"{origin}/jobs/3",
                         f"{origin}/about"}
    assert fetched == 4
    assert b"Job 2" in seen[f"{origin}/jobs/2"]
    assert hits.count("/sitemap.xml") == 1 and hits.count("/jobs/1") == 1   # each once
    assert "/d3.xml" not in hits and "/jobs/deep" not in hits              # depth bound
    assert crawler.stats["foreign_url"] == 2
    assert crawler.stats["too_deep"] == 1
    assert crawler.stats["http_404"] == 1 and crawler.stats["not_html"] == 1


async def test_service_lists_jobs_nobody_visited(tmp_path: Path) -> None:
    async with TestServer(upstream_app([])) as server:
        origin = str(server.make_url("")).rstrip("/")
        config = FeedSection(enabled=True, publisher="Acme", sitemap=True, crawl_rate=1000,
                             crawl_interval=3600, url_params={"src": "appcast"})
        service = FeedService(config, store_path=str(tmp_path / "s.db"),
                              upstream_origin=origin, public_origin=PUBLIC)
        await service.start()
        try:
            assert service.crawler is not None
            while not service.crawler.stats["crawls"]:
                await asyncio.sleep(0.01)
            body, _, _ = service.render()
        finally:
            await service.stop()
    jobs = ET.fromstring(body).findall("job")
    assert sorted(j.findtext("url") or "" for j in jobs) == [
        f"{PUBLIC}/jobs/{n}?src=appcast" for n in (1, 2, 3)]
    assert sorted(j.findtext("referencenumber") or "" for j in jobs) == ["R1", "R2", "R3"]


async def test_unreachable_upstream_counts_and_lists_nothing() -> None:
    crawler = SitemapCrawler("http://127.0.0.1:9", lambda u, b: asyncio.sleep(0), rate=1000,
                             interval=3600)
    assert await crawler.crawl_once() == 0
    assert crawler.stats["fetch_failed"] == 1


def test_parser_handles_namespaces_gzip_and_truncation() -> None:
    doc = b'<?xml version="1.0"?>' + urlset("https://a.example/1", "https://a.example/2"
                                             ).split("?>", 1)[1].encode()
    parser = SitemapParser()
    parser.feed(gzip.compress(doc))
    assert parser.close().locs == ["https://a.example/1", "https://a.example/2"]

    parser = SitemapParser()
    parser.feed(doc[: doc.index(b"https://a.example/2")])       # cut mid-document
    out = parser.close()
    assert (out.kind, out.locs) == ("urlset", ["https://a.example/1"])

    parser = SitemapParser()
    parser.feed(b"<html><body>not a sitemap</body></html>")
    assert parser.close().kind == "?"


def test_parser_bounds_the_number_of_urls() -> None:
    parser = SitemapParser(max_locs=10)
    parser.feed(urlset(*(f"/p/{i}" for i in range(1000))).encode())
    assert len(parser.close().locs) == 10


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_parser_never_raises_on_junk_in_any_chunking(junk: bytes, size: int) -> None:
    data = urlset("/a").encode() + junk
    parser = SitemapParser()
    for i in range(0, len(data), size):
        parser.feed(data[i:i + size])
    assert parser.close().locs == ["/a"]


async def test_requests_are_spaced_by_the_rate() -> None:
    """A lower bound only, over all the gaps: a busy machine can delay one arrival (and
    narrow one gap) but not the crawl as a whole; unpaced, the five gaps take ~1 ms."""
    arrivals: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        arrivals.append(asyncio.get_running_loop().time())
        if request.path == "/sitemap.xml":
            return web.Response(text=urlset(*(f"/jobs/{n}" for n in range(5))),
                                content_type="application/xml")
        return web.Response(text=job_page(1, ""), content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with TestServer(app) as server:
        crawler = SitemapCrawler(str(server.make_url("")), lambda u, b: asyncio.sleep(0),
                                 rate=40, interval=3600)
        assert await crawler.crawl_once() == 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) == 5 and sum(gaps) >= 4 / 40
