"""The feed's façade: what the app wires, and the `GET {prefix}/feed.xml` handler.

    proxy ─observe(url, html)─▶ bounded queue ─worker─▶ harvest (thread) ─▶ JobStore
    sitemap crawler (optional) ─────────────────────────▶ harvest ────────▶ JobStore
    GET feed.xml ─▶ FeedRenderer over the store's memory ─▶ 200 | 304

`observe` is cheap and never blocks: a page without "JobPosting" in it is ignored at
once, the rest is queued and parsed off the event loop; a full queue drops the page.
`skipped[reason]` counts what never reached the feed — reasons: invalid_json,
missing_title, missing_url, foreign_url, missing_date, invalid_date,
too_many_postings, expired (seen already past validThrough), store_full, queue_full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import hdrs, web

from proxy.background import cancel, spawn
from proxy.config.model import FeedSection
from proxy.feed.jobs import JobStore, Store
from proxy.feed.jsonld import harvest, origin_of
from proxy.feed.render import DAY, FeedRenderer
from proxy.feed.sitemap import SitemapCrawler

log = logging.getLogger(__name__)

MAX_HTML = 512 * 1024       # bytes of a page looked at
QUEUE_SIZE = 64             # pages waiting to be parsed (≤ 32 MiB held)
PRUNE_EVERY = 3600.0        # seconds between removals of long-unseen jobs
MARKER = b"JobPosting"      # schema.org type names are case-sensitive
CONTENT_TYPE = "application/xml; charset=utf-8"


class FeedService:
    def __init__(self, config: FeedSection, *, store_path: str, upstream_origin: str,
                 public_origin: str | None, clock: Callable[[], float] = time.time,
                 store: Store | None = None, crawl: bool | None = None) -> None:
        """`store_path`: the SQLite file (table `feed_jobs`), unless `store` is given.
        `public_origin` None: each feed request's own origin is used for job URLs.
        `crawl` overrides `config.sitemap` (e.g. only one worker process crawls)."""
        self.config = config
        self.upstream_origin = origin_of(upstream_origin)
        self.public_origin = origin_of(public_origin) if public_origin else None
        self.clock = clock
        self.store: Store = store if store is not None else JobStore(store_path, clock=clock)
        self.skipped: Counter[str] = Counter()
        self.renderer = FeedRenderer(
            publisher=config.publisher, publisher_url=config.publisher_url,
            url_params=config.url_params, expire_days=config.expire_days)
        self.crawler: SitemapCrawler | None = None
        if config.sitemap if crawl is None else crawl:
            self.crawler = SitemapCrawler(
                self.upstream_origin, self.ingest, rate=config.crawl_rate,
                interval=config.crawl_interval,
                accept_origins=(self.public_origin,) if self.public_origin else ())
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._worker: asyncio.Task | None = None
        self._parser = ThreadPoolExecutor(1, thread_name_prefix="feed-parse")
        self._pruned_at = 0.0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.load()
        self._prune()
        self._queue = asyncio.Queue(QUEUE_SIZE)
        self._worker = spawn(self._work(), "feed-harvest")
        if self.crawler is not None:
            await self.crawler.start()

    async def stop(self) -> None:
        if self.crawler is not None:
            await self.crawler.stop()
        await cancel(self._worker)
        self._worker = None
        self._queue = None
        await self.store.close()
        self._parser.shutdown(wait=True)

    # -- harvesting --------------------------------------------------------------------

    def observe(self, page_url_public: str, html_prefix: bytes | bytearray | memoryview) -> None:
        """A 200 text/html page went through the proxy; harvest it later. Never raises."""
        if self._queue is None:
            return
        if not isinstance(html_prefix, bytes):
            html_prefix = bytes(html_prefix[:MAX_HTML])
        if MARKER not in html_prefix:
            return
        try:
            self._queue.put_nowait((page_url_public, bytes(html_prefix[:MAX_HTML])))
        except asyncio.QueueFull:
            self.skipped["queue_full"] += 1

    async def idle(self) -> None:
        """Wait until every observed page has been harvested."""
        if self._queue is not None:
            await self._queue.join()

    async def ingest(self, page_url: str, html: bytes) -> int:
        """Harvest one page's postings into the store; returns how many were kept."""
        origins = {self.upstream_origin, origin_of(page_url)}
        if self.public_origin:
            origins.add(self.public_origin)
        found = await asyncio.get_running_loop().run_in_executor(
            self._parser, harvest, html[:MAX_HTML], page_url, frozenset(origins))
        self.skipped.update(found.skipped)
        now = self.clock()
        kept = 0
        for job in found.jobs:
            if job.valid_through is not None and job.valid_through <= now:
                self.skipped["expired"] += 1    # still stored: it may replace a live copy
            if self.store.upsert(job, now):
                kept += 1
            else:
                self.skipped["store_full"] += 1
        if now - self._pruned_at > PRUNE_EVERY:
            self._prune()
        return kept

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            url, html = await self._queue.get()
            try:
                await self.ingest(url, html)
            except Exception:               # one bad page must not stop the feed
                log.exception("feed: harvesting %s failed", url)
            finally:
                self._queue.task_done()

    def _prune(self) -> None:
        self._pruned_at = now = self.clock()
        self.store.prune(now - self.config.expire_days * DAY)

    # -- serving ---------------------------------------------------------------------

    def render(self, origin: str | None = None) -> tuple[bytes, str, float]:
        """(body, quoted ETag, Last-Modified as epoch seconds). Job URLs go on the
        configured public origin; without one, on `origin` (the request's) — never
        remembered, so one request with a forged Host cannot re-point the feed."""
        out = self.renderer.render(
            self.store.all(), self.store.version,
            self.public_origin or (origin_of(origin) if origin else self.upstream_origin),
            self.clock())
        return out.body, out.etag, out.last_modified


def not_modified(headers: Mapping[str, str], etag: str, last_modified: float) -> bool:
    """RFC 9110 §13.1: If-None-Match (weak comparison) wins over If-Modified-Since."""
    inm = headers.get(hdrs.IF_NONE_MATCH)
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    ims = headers.get(hdrs.IF_MODIFIED_SINCE)
    if ims is None:
        return False
    try:
        since = parsedate_to_datetime(ims).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    return int(last_modified) <= since


def request_origin(request: web.BaseRequest) -> str:
    return f"{request.scheme}://{request.host}"


def feed_handler(service: FeedService,
                 origin_of_request: Callable[[web.BaseRequest], str] | None = None,
                 ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The `GET {prefix}/feed.xml` handler. `origin_of_request` gives the public origin
    as the proxy sees it (trusted X-Forwarded-Proto/Host); default: scheme and Host."""
    origin_of_request = origin_of_request or request_origin

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body, etag, last_modified = service.render(origin_of_request(request))
        headers = {
            hdrs.ETAG: etag,
            hdrs.LAST_MODIFIED: formatdate(last_modified, usegmt=True),
            hdrs.CACHE_CONTROL: "no-cache",
        }
        if not_modified(request.headers, etag, last_modified):
            return web.Response(status=304, headers=headers)
        headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE
        return web.Response(body=body, headers=headers)

    return handle
