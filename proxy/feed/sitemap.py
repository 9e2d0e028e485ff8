"""The sitemap crawler: lists jobs nobody has visited through the proxy yet.

Reads the upstream's `/sitemap.xml` (a urlset or a sitemap index, nested to
`MAX_DEPTH`, gzip allowed), then fetches each listed page of the upstream origin at
no more than `rate` requests a second and hands its HTML to `harvest`. Every
document is read streaming and bounded; a sitemap cut off by the bound still yields
the URLs before the cut. One crawl runs every `interval` seconds, as a background
task the app owns (`start` / `stop`).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

import aiohttp
from aiohttp import hdrs

from proxy.background import cancel, spawn
from proxy.feed.jsonld import origin_of

log = logging.getLogger(__name__)

SITEMAP_PATH = "/sitemap.xml"
MAX_DEPTH = 3                       # index → index → urlset
MAX_SITEMAPS = 50                   # sitemap documents per crawl
MAX_PAGES = 10_000                  # pages fetched per crawl
MAX_SITEMAP_BYTES = 16 * 1024 * 1024
MAX_PAGE_BYTES = 512 * 1024         # the same prefix the proxy hands the feed
READ_CHUNK = 64 * 1024
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
USER_AGENT = "careers-edge-feed/1 (+sitemap)"

Harvester = Callable[[str, bytes], Awaitable[object]]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(slots=True)
class SitemapDoc:
    kind: str = ""                          # "urlset" | "sitemapindex" | "" (not a sitemap)
    locs: list[str] = field(default_factory=list)


class SitemapParser:
    """Incremental: `feed` chunks, then `close`; tolerant of a truncated document."""

    def __init__(self, max_locs: int = MAX_PAGES) -> None:
        self.doc = SitemapDoc()
        self._max = max_locs
        self._xml: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._gunzip: zlib._Decompress | None = None
        self._started = False
        self._broken = False
        self._budget = MAX_SITEMAP_BYTES            # decompressed bytes still allowed

    def feed(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            if data[:2] == b"\x1f\x8b":             # a .xml.gz served as is
                self._gunzip = zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self._gunzip is not None and not self._broken:
            try:
                data = self._gunzip.decompress(data, self._budget)
            except zlib.error:
                self._broken = True
                return
            self._budget -= len(data)
            self._parse(data)
            if self._budget <= 0:                   # past the bound: stop here
                self._broken = True
            return
        self._parse(data)

    def close(self) -> SitemapDoc:
        self._parse(None)
        return self.doc

    def _parse(self, data: bytes | None) -> None:
        if self._broken:
            return
        try:
            if data is None:
                self._xml.close()
            else:
                self._xml.feed(data)
            events = cast(Iterator[tuple[str, Element]], self._xml.read_events())
            for event, elem in events:      # only start/end events: always elements
                name = _local(elem.tag)
                if event == "start":
                    if not self.doc.kind:
                        self.doc.kind = name if name in ("urlset", "sitemapindex") else "?"
                    continue
                if name == "loc" and elem.text and len(self.doc.locs) < self._max:
                    self.doc.locs.append(elem.text.strip())
                elif name in ("url", "sitemap"):
                    elem.clear()                    # keep memory flat on big sitemaps
        except ParseError:
            self._broken = True                     # keep what was read before the break


class SitemapCrawler:
    def __init__(self, upstream_origin: str, harvest: Harvester, *, rate: float,
                 interval: float, accept_origins: tuple[str, ...] = ()) -> None:
        self.upstream = origin_of(upstream_origin)
        self.harvest = harvest
        self.rate = max(rate, 0.001)
        self.interval = interval
        # sitemap URLs may name the public host; they are fetched from the upstream
        self.accept = {self.upstream, *map(origin_of, accept_origins)}
        self.stats: Counter[str] = Counter()
        self._task: asyncio.Task | None = None
        self._next_slot = 0.0

    async def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), "feed-sitemap-crawler")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.crawl_once()
            except Exception:
                log.exception("feed: sitemap crawl of %s failed", self.upstream)
                self.stats["crawl_failed"] += 1
            await asyncio.sleep(self.interval)

    async def crawl_once(self) -> int:
        """One crawl; returns how many pages were fetched and harvested."""
        headers = {hdrs.USER_AGENT: USER_AGENT}
        async with aiohttp.ClientSession(timeout=FETCH_TIMEOUT, headers=headers) as session:
            pages = await self._list_pages(session)
            done = 0
            for url in pages:
                body = await self._get(session, url, MAX_PAGE_BYTES, html=True)
                if body is not None:
                    await self.harvest(url, body)
                    done += 1
            self.stats["crawls"] += 1
            return done

    async def _list_pages(self, session: aiohttp.ClientSession) -> list[str]:
        queue: list[tuple[str, int]] = [(self.upstream + SITEMAP_PATH, 0)]
        seen_maps: set[str] = set()
        pages: dict[str, None] = {}                 # ordered, de-duplicated
        while queue and len(seen_maps) < MAX_SITEMAPS and len(pages) < MAX_PAGES:
            url, depth = queue.pop(0)
            if url in seen_maps:
                continue
            seen_maps.add(url)
            doc = await self._sitemap(session, url)
            if doc is None:
                continue
            for loc in doc.locs:
                target = self._upstream_url(urljoin(url, loc))
                if target is None:
                    self.stats["foreign_url"] += 1
                elif doc.kind == "sitemapindex":
                    if depth + 1 < MAX_DEPTH:
                        queue.append((target, depth + 1))
                    else:
                        self.stats["too_deep"] += 1
                elif len(pages) < MAX_PAGES:
                    pages[target] = None
        return list(pages)

    def _upstream_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or origin_of(url) not in self.accept:
            return None
        return self.upstream + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def _sitemap(self, session: aiohttp.ClientSession, url: str) -> SitemapDoc | None:
        parser = SitemapParser()
        body = await self._get(session, url, MAX_SITEMAP_BYTES, html=False, sink=parser.feed)
        if body is None:
            return None
        doc = parser.close()
        if doc.kind not in ("urlset", "sitemapindex"):
            self.stats["not_a_sitemap"] += 1
            return None
        self.stats["sitemaps"] += 1
        return doc

    async def _pace(self) -> None:
        """At most `rate` requests a second, sitemaps and pages together."""
        loop = asyncio.get_running_loop()
        wait = self._next_slot - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_slot = max(self._next_slot, loop.time()) + 1.0 / self.rate

    async def _get(self, session: aiohttp.ClientSession, url: str, limit: int, *,
                   html: bool, sink: Callable[[bytes], None] | None = None) -> bytes | None:
        """GET `url`; the first `limit` bytes of a 200 (HTML when `html`), else None.
        With `sink`, chunks go to it and the returned bytes are empty."""
        await self._pace()
        try:
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status != 200 or (html and resp.content_type != "text/html"):
                    self.stats[f"http_{resp.status}" if resp.status != 200 else "not_html"] += 1
                    return None
                chunks: list[bytes] = []
                read = 0
                while read < limit:
                    chunk = await resp.content.read(min(READ_CHUNK, limit - read))
                    if not chunk:
                        break
                    read += len(chunk)
                    if sink is not None:
                        sink(chunk)
                    else:
                        chunks.append(chunk)
                self.stats["fetched"] += 1
                return b"".join(chunks)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.info("feed: fetching %s failed: %r", url, exc)
            self.stats["fetch_failed"] += 1
            return None
