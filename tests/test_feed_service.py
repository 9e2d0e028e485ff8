"""The feed end to end: observe pages, serve feed.xml over a real socket, 200/304."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.background import part
from proxy.config.model import FeedSection
from proxy.feed import service as service_module
from proxy.feed.render import DAY
from proxy.feed.service import FeedService, feed_handler, not_modified

PUBLIC = "https://careers.acme.example"
UPSTREAM = "https://acme.hosted-ats.example"
T0 = 1_714_556_800.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def page(*postings: dict) -> bytes:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(p)}</script>'
                      for p in postings)
    return f"<html><head>{scripts}</head><body>x</body></html>".encode()


def posting(n: int, **extra: object) -> dict:
    data: dict = {"@context": "https://schema.org", "@type": "JobPosting",
                  "title": f"Job {n}", "datePosted": "2024-04-01",
                  "url": f"{UPSTREAM}/jobs/{n}", "description": f"<p>Job {n}</p>"}
    data.update(extra)
    return data


def config(**kw: object) -> FeedSection:
    args: dict = {"enabled": True, "publisher": "Acme GmbH", "expire_days": 30,
                  "url_params": {"utm_source": "feed"}}
    args.update(kw)
    return FeedSection(**args)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make(tmp_path: Path, clock: Clock) -> AsyncIterator[Callable[..., FeedService]]:
    started: list[FeedService] = []

    def build(public: str | None = PUBLIC, **kw: object) -> FeedService:
        svc = FeedService(config(**kw), store_path=str(tmp_path / "state.db"),
                          upstream_origin=UPSTREAM, public_origin=public, clock=clock)
        started.append(svc)
        return svc

    yield build
    for svc in started:
        if svc._worker is not None:
            await svc.stop()


async def client_for(svc: FeedService, aiohttp_client: Callable) -> TestClient:
    app = web.Application()
    app.router.add_get("/_edge/feed.xml", feed_handler(svc))
    return await aiohttp_client(app)


def urls(body: bytes) -> list[str]:
    return [j.findtext("url") or "" for j in ET.fromstring(body).findall("job")]


async def test_served_feed_with_conditional_get(make: Callable, aiohttp_client: Callable,
                                                clock: Clock) -> None:
    svc = make()
    await svc.start()
    svc.observe(PUBLIC + "/jobs/1", page(posting(1)))
    svc.observe(PUBLIC + "/jobs", page([posting(2), posting(3, url="/jobs/3?lang=de")]))
    await svc.idle()
    client = await client_for(svc, aiohttp_client)

    resp = await client.get("/_edge/feed.xml")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/xml; charset=utf-8"
    body = await resp.read()
    root = ET.fromstring(body)
    assert root.findtext("publisher") == "Acme GmbH"
    assert sorted(urls(body)) == [f"{PUBLIC}/jobs/1?utm_source=feed",
                                  f"{PUBLIC}/jobs/2?utm_source=feed",
                                  f"{PUBLIC}/jobs/3?lang=de&utm_source=feed"]
    assert all(u.startswith(PUBLIC + "/") for u in urls(body))
    assert UPSTREAM.encode() not in body
    etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]

    resp = await client.get("/_edge/feed.xml", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag
    assert await resp.read() == b""
    resp = await client.get("/_edge/feed.xml", headers={"If-None-Match": f'"x", W/{etag}'})
    assert resp.status == 304
    resp = await client.get("/_edge/feed.xml", headers={"If-Modified-Since": last_modified})
    assert resp.status == 304
    resp = await client.get("/_edge/feed.xml", headers={"If-None-Match": '"other"',
                                                        "If-Modified-Since": last_modified})
    assert resp.status == 200                       # If-None-Match wins
    resp = await client.head("/_edge/feed.xml")
    assert resp.status == 200 and resp.headers["ETag"] == etag

    clock.now += 120
    svc.observe(PUBLIC + "/jobs/4", page(posting(4)))
    await svc.idle()
    resp = await client.get("/_edge/feed.xml", headers={"If-None-Match": etag,
                                                        "If-Modified-Since": last_modified})
    assert resp.status == 200 and resp.headers["ETag"] != etag
    assert len(urls(await resp.read())) == 4
    resp = await client.get("/_edge/feed.xml", headers={"If-Modified-Since": last_modified})
    assert resp.status == 200                       # modified since the old date


async def test_public_origin_from_the_request_when_not_configured(
        make: Callable, aiohttp_client: Callable) -> None:
    svc = make(public=None)
    await svc.start()
    client = await client_for(svc, aiohttp_client)
    await svc.ingest(UPSTREAM + "/jobs/1", page(posting(1)))    # as the crawler does
    origin = str(client.make_url("")).rstrip("/")
    body = await (await client.get("/_edge/feed.xml")).read()
    assert urls(body) == [f"{origin}/jobs/1?utm_source=feed"]
    assert ET.fromstring(body).findtext("publisherurl") == origin


async def test_request_origin_is_used_per_request_never_pinned(
        make: Callable, aiohttp_client: Callable) -> None:
    svc = make(public=None)
    await svc.start()
    client = await client_for(svc, aiohttp_client)
    svc.observe("http://careers.example:8080/jobs/1", page(posting(1)))
    await svc.idle()
    forged = await (await client.get("/_edge/feed.xml",
                                     headers={"Host": "attacker.example"})).read()
    assert urls(forged) == ["http://attacker.example/jobs/1?utm_source=feed"]
    honest = await (await client.get("/_edge/feed.xml",
                                     headers={"Host": "careers.example:8080"})).read()
    assert urls(honest) == ["http://careers.example:8080/jobs/1?utm_source=feed"]


async def test_expiry_by_valid_through_and_by_expire_days(make: Callable,
                                                          clock: Clock) -> None:
    svc = make(expire_days=10)
    await svc.start()
    svc.observe(PUBLIC + "/jobs/1", page(posting(1)))
    svc.observe(PUBLIC + "/jobs/2", page(posting(2, validThrough="2024-05-03")))
    svc.observe(PUBLIC + "/jobs/3", page(posting(3, validThrough="2024-04-30")))
    await svc.idle()
    assert svc.skipped["expired"] == 1
    assert len(urls(svc.render()[0])) == 2

    clock.now = T0 + 3 * DAY                        # job 2's validThrough has passed
    assert [u.split("?")[0] for u in urls(svc.render()[0])] == [PUBLIC + "/jobs/1"]

    svc.observe(PUBLIC + "/jobs/1", page(posting(1)))   # seen again: 10 more days
    await svc.idle()
    clock.now = T0 + 12 * DAY
    assert len(urls(svc.render()[0])) == 1
    clock.now = T0 + 13 * DAY + 1                   # unseen for more than 10 days
    assert urls(svc.render()[0]) == []


async def test_hostile_content_keeps_the_feed_well_formed(make: Callable) -> None:
    svc = make()
    await svc.start()
    nasty = "</description></job><job><title>x</title> ]]> <![CDATA[ \x00\x0b & <b>bold</b>"
    svc.observe(PUBLIC + "/jobs/1", page(posting(1, description=nasty, title="A ]]> B")))
    huge = posting(2, description="x" * (5 * 1024 * 1024))
    svc.observe(PUBLIC + "/jobs/2", page(huge))                  # cut at 512 KiB: broken
    svc.observe(PUBLIC + "/jobs/3", b'<script type="application/ld+json">{"@type": '
                                    b'"JobPosting",,}</script>')
    svc.observe(PUBLIC + "/jobs/4", page(posting(4, datePosted=None)))
    svc.observe(PUBLIC + "/about", b"<html><body>no postings here</body></html>")
    await svc.idle()
    root = ET.fromstring(svc.render()[0])
    (job,) = root.findall("job")
    assert job.findtext("title") == "A ]]> B"
    assert job.findtext("description") == nasty.replace("\x00", "").replace("\x0b", "")
    assert svc.skipped["invalid_json"] == 2
    assert svc.skipped["missing_date"] == 1


async def test_observe_never_blocks_and_counts_drops(make: Callable,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "QUEUE_SIZE", 3)
    svc = make()
    svc.observe(PUBLIC + "/jobs/0", page(posting(0)))            # before start: ignored
    await svc.start()
    for n in range(5):                                           # the worker has not run yet
        svc.observe(PUBLIC + f"/jobs/{n}", page(posting(n)))
    assert svc.skipped["queue_full"] == 2
    await svc.idle()
    assert len(urls(svc.render()[0])) == 3


async def test_jobs_survive_a_restart(make: Callable) -> None:
    first = make()
    await first.start()
    first.observe(PUBLIC + "/jobs/1", page(posting(1)))
    await first.idle()
    body, etag, _ = first.render()
    await first.stop()

    second = make()
    await second.start()
    body2, etag2, _ = second.render()
    assert etag2 == etag and urls(body2) == urls(body)


async def test_lifecycle_fits_cleanup_ctx(make: Callable, aiohttp_client: Callable) -> None:
    svc = make()
    app = web.Application()
    app.cleanup_ctx.append(part("feed", start=svc.start, stop=svc.stop))
    app.router.add_get("/feed.xml", feed_handler(svc, lambda r: "https://other.example"))
    client = await aiohttp_client(app)
    svc.observe(PUBLIC + "/jobs/1", page(posting(1)))
    await svc.idle()
    body = await (await client.get("/feed.xml")).read()
    assert urls(body) == [f"{PUBLIC}/jobs/1?utm_source=feed"]   # configured origin wins
    await client.close()
    assert svc._worker is None


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, False),
    ({"If-None-Match": "*"}, True),
    ({"If-None-Match": '"a"'}, True),
    ({"If-None-Match": 'W/"a"'}, True),
    ({"If-None-Match": '"b", "c"'}, False),
    ({"If-Modified-Since": formatdate(T0, usegmt=True)}, True),
    ({"If-Modified-Since": formatdate(T0 - 1, usegmt=True)}, False),
    ({"If-Modified-Since": "garbage"}, False),
])
def test_not_modified(headers: dict, expected: bool) -> None:
    assert not_modified(headers, '"a"', T0) is expected
