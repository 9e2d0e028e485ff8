"""The proxy's own endpoints under the reserved prefix (SPEC sections 5 and 7).

Two doors, one `Routes` type (proxy/endpoint_routes.py). The public listener serves
visitors and ad networks: `healthz`, `go`, `preview`, `api/events`, `feed.xml`. The
admin listener (`endpoints/admin.py`) serves operators: `healthz`, `readyz`,
`metrics`, and whatever is mounted on `edge.admin` later. On the public listener a
path the admin routes own is answered 404 and counted nowhere, as if it did not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from proxy.endpoint_routes import Handler, RequestHandler, Routes, below
from proxy.endpoints.go import go
from proxy.endpoints.health import healthz
from proxy.endpoints.preview import preview

if TYPE_CHECKING:
    from proxy.edge import Edge

__all__ = ["HEALTHZ", "Handler", "PublicEndpoints", "RequestHandler", "Routes", "below"]

HEALTHZ = "/healthz"


class PublicEndpoints:
    """The public listener's endpoints; `edge.endpoints(request, target)` answers one."""

    def __init__(self, edge: Edge, events_api: RequestHandler | None,
                 feed: RequestHandler | None) -> None:
        self.edge = edge
        self.routes = Routes()
        self.routes.add_plain("GET", HEALTHZ, lambda r: healthz(edge))
        self.routes.add("GET", "/go", lambda r, target: go(r, edge, target))
        self.routes.add("GET", "/preview", lambda r, target: preview(r, edge, target))
        if events_api is not None:
            self.routes.add_plain("POST", "/api/events", events_api)
        if feed is not None:
            self.routes.add_plain("GET", "/feed.xml", feed)

    def unchecked_host(self, target: str) -> bool:
        """healthz answers whatever the Host: load balancers and orchestrators probe
        by IP address."""
        return below(self.edge.runtime.prefix, target) == HEALTHZ

    def admin_only(self, target: str) -> bool:
        sub = below(self.edge.runtime.prefix, target)
        return self.edge.admin.owns(sub) and not self.routes.owns(sub)

    async def __call__(self, request: web.BaseRequest, target: str) -> web.StreamResponse:
        return await self.routes.dispatch(request, below(self.edge.runtime.prefix, target),
                                          target)
