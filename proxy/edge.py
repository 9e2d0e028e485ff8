"""The running proxy's parts, held in one typed app key.

`Edge` owns what outlives a rules reload (transport, stores, metrics, the access
log) and the current `Runtime` (what one rules file compiles to). Lifecycle is in
`app.py`; this module only holds and counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import aiohttp
from aiohttp import HttpVersion10, HttpVersion11, web
from cachetools import TTLCache

from proxy.access_log import AccessLog, RequestIds
from proxy.endpoint_routes import Routes
from proxy.http.realip import real_ip, xff_values
from proxy.metrics import Increment, Metrics
from proxy.ops.live import Live
from proxy.ports import Endpoints, FeedObserver, Journeys, ObservedPage, Outbox, Transport
from proxy.readiness import Readiness
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.template import TemplateCache

if TYPE_CHECKING:
    from proxy.attribution.visit import Visit
    from proxy.http.upstreams import Upstreams
    from proxy.runtime import Runtime

log = logging.getLogger("careers_edge")
FEED_REOBSERVE_SECONDS = 60.0

_PROTOCOLS = {HttpVersion11: "HTTP/1.1", HttpVersion10: "HTTP/1.0"}

__all__ = ["EDGE", "AccessLog", "Edge"]


class Counted(Protocol):
    """What counting and the access log read of a response, ours or aiohttp's."""

    @property
    def status(self) -> int: ...

    @property
    def content_length(self) -> int | None: ...


A = TypeVar("A", bound=Counted)


@dataclass(eq=False)
class Edge:
    runtime: Runtime
    transport: Transport                # the main upstream's pool
    metrics: Metrics
    outbox: Outbox
    journeys: Journeys
    upstreams: Upstreams = None         # type: ignore[assignment]  # every upstream's pool
    feed: FeedObserver | None = None
    access_log: AccessLog = field(default_factory=AccessLog)
    request_ids: RequestIds = field(default_factory=RequestIds)
    endpoints: Endpoints = None         # type: ignore[assignment]  # set by build_app
    admin: Routes = None                # type: ignore[assignment]  # the operators' routes
    readiness: Readiness = field(default_factory=Readiness)
    live: Live = field(default_factory=Live)     # the operators' live feed (this process's)
    started_at: float = field(default_factory=time.time)
    draining: bool = False
    _ws_session: aiohttp.ClientSession | None = None
    _codes: dict[int, Increment] = field(default_factory=dict)
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

    def finish(self, request: web.BaseRequest, resp: A, started: float,
               ip: str | None = None, upstream: float | None = None,
               request_id: str | None = None, sent: int | None = None, *,
               count: bool = True, quiet: bool = False) -> A:
        """Count the response (unless `count` is off: operators' and refused admin
        requests are no visitors') and access-log it (unless `quiet`) with the visitor's
        IP (`ip`, else found here by the realip walk). `upstream`: seconds to the
        upstream's headers; `request_id`: the one sent upstream (else a new one);
        `sent`: body bytes sent (else the response's length)."""
        code = resp.status
        seconds = time.monotonic() - started
        if count:
            self.count_code(code)
            self.metrics.request_seconds.observe(seconds)
        if self.access_log.enabled and not quiet:
            if ip is None:
                ip = real_ip(request.remote or "", xff_values(request.raw_headers),
                             self.runtime.trusted).ip
            headers = request.headers
            v = request.version
            self.access_log.add((
                time.time(), seconds, request.method, request.raw_path,
                _PROTOCOLS.get(v) or f"HTTP/{v.major}.{v.minor}", code,
                (resp.content_length or 0) if sent is None else sent, upstream,
                request_id or self.request_ids(), ip, headers.get("User-Agent", ""),
                headers.get("Referer", "")))
        return resp

    def count_code(self, code: int) -> None:
        """One response with status `code` (also those answered below the pipeline)."""
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self.metrics.requests.labels(str(code))
        counter.inc()

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
        self.journeys.record(visit)

    def feed_wants(self, page: str) -> bool:
        """Whether the feed wants this page's body (`page`: public URL without query)."""
        return self.feed is not None and page not in self._observed

    def observe_page(self, page_url: str, status: int, page: ObservedPage) -> None:
        if self.feed is None or status != 200:
            return
        # A job page seen a minute ago has nothing new for the feed: skip the re-parse.
        url = page_url.partition("?")[0]
        if url in self._observed:
            return
        self._observed[url] = True
        try:
            self.feed.observe(page_url, page.observed())
        except Exception:
            log.exception("feed observe failed")


EDGE = web.AppKey("edge", Edge)
