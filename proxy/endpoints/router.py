"""The proxy's own endpoints under the reserved prefix (SPEC section 5)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.endpoints.go import go
from proxy.endpoints.health import healthz, readyz
from proxy.http.errors import error_response

if TYPE_CHECKING:
    from proxy.edge import Edge

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def build_endpoints(edge: Edge, events_api: Handler | None, feed: Handler | None
                    ) -> Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]:
    async def metrics(request: web.BaseRequest) -> web.Response:
        if edge.outbox is not None:
            try:
                edge.metrics.outbox_pending.set(await edge.outbox.pending_count())
            except Exception:
                pass
        body, content_type = edge.metrics.render()
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type,
                                                "Cache-Control": "no-store"})

    routes: dict[tuple[str, str], Handler] = {
        ("GET", "/healthz"): lambda r: healthz(edge),
        ("GET", "/readyz"): lambda r: readyz(edge),
        ("GET", "/metrics"): metrics,
    }
    if events_api is not None:
        routes[("POST", "/api/events")] = events_api
    if feed is not None:
        routes[("GET", "/feed.xml")] = feed

    async def dispatch(request: web.BaseRequest, target: str) -> web.StreamResponse:
        prefix = edge.runtime.prefix
        sub = target[len(prefix):].partition("?")[0]
        method = "GET" if request.method == "HEAD" else request.method
        if sub == "/go":
            if method != "GET":
                return error_response(405, "Use GET.", request.headers.get(hdrs.ACCEPT),
                                      headers={"Allow": "GET, HEAD"})
            return await go(request, edge, target)
        handler = routes.get((method, sub))
        if handler is not None:
            return await handler(request)
        if any(path == sub for _, path in routes):
            allow = ", ".join(sorted({m for m, p in routes if p == sub}))
            return error_response(405, "Method not allowed.", request.headers.get(hdrs.ACCEPT),
                                  headers={"Allow": allow})
        return error_response(404, "No such endpoint.", request.headers.get(hdrs.ACCEPT))
    return dispatch
