"""The ports `Edge` holds: what the request path asks of the impure parts.

    Transport      the upstream pool the pipeline forwards through (http.pool.UpstreamPool)
    Outbox         the durable conversions queue (conversions.outbox.Outbox, the backends'
                   contract, lives beside its state table; re-exported here)
    JourneyLookup  a visitor's journey by cookie id or click id (the events API's need)
    Journeys       the journey store: record a visit, look it up, flush, start and stop
                   (attribution.journeys.JourneyStore, attribution.redis_journeys)
    FeedObserver   what sees each page for the job feed (feed.service.FeedService)
    ObservedPage   a page as the feed reads it: its head's bytes (page.PageTransform)
    Endpoints      the proxy's own public endpoints (endpoints.router.PublicEndpoints)

Each concrete class satisfies its port structurally; mypy checks it where they are wired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from proxy.conversions.outbox import Outbox

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.attribution.journey_rows import Journey
    from proxy.attribution.visit import Visit
    from proxy.http.pool import Body
    from proxy.http.upstream_response import UpstreamResponse

__all__ = ["Endpoints", "FeedObserver", "JourneyLookup", "Journeys", "ObservedPage", "Outbox",
           "Transport"]


class Transport(Protocol):
    async def request(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: Body = None, *, body_length: int | None = None,
                      header_timeout: float = 30.0,
                      pool_timeout: float | None = None) -> UpstreamResponse:
        """Send one request; return once the response headers are in."""
        ...

    async def close(self) -> None: ...


class JourneyLookup(Protocol):
    async def get(self, links_clicked_id: str) -> Journey | None: ...

    async def find_by_click(self, param: str, value: str) -> Journey | None: ...


class Journeys(JourneyLookup, Protocol):
    dropped: int

    @property
    def pending(self) -> int: ...

    def record(self, visit: Visit, now: float | None = None) -> None:
        """Buffer the visit's journey; never blocks, never raises."""
        ...

    async def ids_by_click_value(self, value: str, limit: int = 50) -> list[str]: ...

    async def flush(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class FeedObserver(Protocol):
    def observe(self, page_url_public: str,
                html_prefix: bytes | bytearray | memoryview) -> None:
        """A 200 HTML page went through the proxy; harvest it later. Never raises."""
        ...


class ObservedPage(Protocol):
    def observed(self) -> bytes:
        """The page's head as the transform saw it."""
        ...


class Endpoints(Protocol):
    def unchecked_host(self, target: str) -> bool:
        """Answered whatever the Host (healthz)."""
        ...

    def admin_only(self, target: str) -> bool:
        """An operators' path: 404 on the public listener."""
        ...

    async def __call__(self, request: web.BaseRequest, target: str) -> web.StreamResponse: ...
