"""The running proxy's parts, held in one typed app key.

`Edge` owns what outlives a rules reload (transport, stores, metrics, the access
log) and the current `Runtime` (what one rules file compiles to). Lifecycle is in
`app.py`; this module only holds and counts.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web
from cachetools import TTLCache

from proxy.endpoints.health import Readiness
from proxy.http.realip import real_ip, xff_values
from proxy.metrics import Metrics
from proxy.ops.live import Live
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.template import TemplateCache

if TYPE_CHECKING:
    from proxy.attribution.visit import Visit
    from proxy.endpoints.router import PublicEndpoints, Routes
    from proxy.http.upstreams import Upstreams
    from proxy.runtime import Runtime

log = logging.getLogger("careers_edge")
FEED_REOBSERVE_SECONDS = 60.0


class AccessLog:
    """JSON lines, buffered and written by a background task, never on the hot path."""

    def __init__(self, stream: Any = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout.buffer
        self.lines: list[bytes] = []

    def add(self, record: dict[str, Any]) -> None:
        if self.enabled and len(self.lines) < 100_000:
            self.lines.append(orjson.dumps(record))

    def flush(self) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            try:
                self.stream.write(b"\n".join(lines) + b"\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    async def run(self, interval: float = 0.5) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            self.flush()


@dataclass(eq=False)
class Edge:
    runtime: Runtime
    transport: Any                      # UpstreamPool: the main upstream's
    metrics: Metrics
    outbox: Any = None                  # conversions.outbox.Outbox
    upstreams: Upstreams = None         # type: ignore[assignment]  # every upstream's pool
    journeys: Any = None                # attribution.journeys.JourneyStore
    feed: Any = None                    # feed.service.FeedService
    access_log: AccessLog = field(default_factory=AccessLog)
    endpoints: PublicEndpoints = None   # type: ignore[assignment]  # set by build_app
    admin: Routes = None                # type: ignore[assignment]  # the operators' routes
    readiness: Readiness = field(default_factory=Readiness)
    live: Live = field(default_factory=Live)     # the operators' live feed (this process's)
    started_at: float = field(default_factory=time.time)
    draining: bool = False
    _ws_session: aiohttp.ClientSession | None = None
    _codes: dict[int, Any] = field(default_factory=dict)
    # Keyed by everything they depend on (upstream bytes and headers, snippets
    # present, link rewriting, pixel hosts), so they outlive a rules reload.
    templates: TemplateCache = field(default_factory=TemplateCache)
    header_plans: HeaderPlans = field(default_factory=HeaderPlans)
    _observed: TTLCache[str, bool] = field(
        default_factory=lambda: TTLCache(maxsize=4096, ttl=FEED_REOBSERVE_SECONDS))

    def ws_session(self) -> aiohttp.ClientSession:
        if self._ws_session is None or self._ws_session.closed:
            self._ws_session = aiohttp.ClientSession(auto_decompress=False)
        return self._ws_session

    def finish(self, request: web.BaseRequest, resp: web.StreamResponse, started: float,
               ip: str | None = None, *, count: bool = True) -> web.StreamResponse:
        """Count the response (unless `count` is off: operators' and refused admin
        requests are no visitors') and access-log it with the visitor's IP (`ip`, else
        found here by the realip walk)."""
        code = resp.status
        seconds = time.monotonic() - started
        if count:
            counter = self._codes.get(code)
            if counter is None:
                counter = self._codes[code] = self.metrics.requests.labels(str(code))
            counter.inc()
            self.metrics.request_seconds.observe(seconds)
        if self.access_log.enabled:
            if ip is None:
                ip = real_ip(request.remote or "", xff_values(request.raw_headers),
                             self.runtime.trusted).ip
            self.access_log.add({
                "t": round(time.time(), 3),
                "ip": ip,
                "m": request.method,
                "path": request.raw_path[:2048],
                "status": code,
                "ms": round(seconds * 1000, 2),
                "ua": request.headers.get("User-Agent", "")[:256],
            })
        return resp

    def count_visit(self, visit: Visit) -> None:
        m = self.metrics
        for param in visit.new_clicks:      # a reload of the landing URL is no new click
            m.clicks_captured.labels(param).inc()
        for param in visit.rejected:
            m.clicks_rejected.labels(param).inc()
        if visit.cookie_rejected:
            m.cookies_rejected.inc()
        if visit.consent_state.tcf_invalid:
            m.tcf_invalid.inc()
        if self.journeys is not None:
            self.journeys.record(visit)

    def feed_wants(self, page: str) -> bool:
        """Whether the feed wants this page's body (`page`: public URL without query)."""
        return self.feed is not None and page not in self._observed

    def observe_page(self, page_url: str, status: int, transform: Any) -> None:
        if self.feed is None or status != 200:
            return
        # A job page seen a minute ago has nothing new for the feed: skip the re-parse.
        page = page_url.partition("?")[0]
        if page in self._observed:
            return
        self._observed[page] = True
        try:
            self.feed.observe(page_url, transform.observed())
        except Exception:
            log.exception("feed observe failed")


EDGE = web.AppKey("edge", Edge)
