"""The proxy's own endpoints under the reserved prefix (SPEC sections 5 and 7).

Two doors, one `Routes` type. The public listener serves visitors and ad networks:
`healthz`, `go`, `preview`, `api/events`, `feed.xml`. The admin listener (`endpoints/admin.py`)
serves operators: `healthz`, `readyz`, `metrics`, and whatever is mounted on
`edge.admin` later. On the public listener a path the admin routes own is answered
404 and counted nowhere, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.endpoints.go import go
from proxy.endpoints.health import healthz
from proxy.endpoints.preview import preview
from proxy.http.errors import error_response

if TYPE_CHECKING:
    from proxy.edge import Edge

# (request, target): target is the path and query below the host, as the client sent it.
Handler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
HEALTHZ = "/healthz"


class Routes:
    """Endpoints by method and path below the prefix. `add` serves one path; `mount`
    serves a whole subtree (a path ending in "/"), any method, for a handler that
    routes further itself (an operators' UI or API)."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._trees: list[tuple[str, Handler]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._exact[(method.upper(), path)] = handler

    def add_plain(self, method: str, path: str, handler: RequestHandler) -> None:
        """`add` for a handler that needs only the request."""
        self.add(method, path, lambda request, _target: handler(request))

    def mount(self, subtree: str, handler: Handler) -> None:
        if not subtree.endswith("/"):
            raise ValueError(f"a mounted subtree ends with '/': {subtree!r}")
        self._trees.append((subtree, handler))

    def owns(self, sub: str) -> bool:
        """Whether `sub` (a path below the prefix, no query) is one of these routes'."""
        return any(path == sub for _, path in self._exact) or any(
            sub.startswith(tree) or sub + "/" == tree for tree, _ in self._trees)

    async def dispatch(self, request: web.BaseRequest, sub: str, target: str
                       ) -> web.StreamResponse:
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._exact.get((method, sub))
        if handler is not None:
            return await handler(request, target)
        for tree, mounted in self._trees:
            if sub.startswith(tree):
                return await mounted(request, target)
        accept = request.headers.get(hdrs.ACCEPT)
        allowed = sorted({m for m, p in self._exact if p == sub})
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            return error_response(405, "Method not allowed.", accept,
                                  headers={"Allow": ", ".join(allowed)})
        return error_response(404, "No such endpoint.", accept)


def below(prefix: str, target: str) -> str:
    """The path below the prefix, without the query: '/_edge/go?to=x' -> '/go'."""
    return target[len(prefix):].partition("?")[0]


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
