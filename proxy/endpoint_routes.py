"""Endpoints by method and path below the reserved prefix: the one `Routes` type both
doors use (the public listener's `PublicEndpoints`, the operators' `edge.admin`).

Routing only: nothing here knows `Edge`, so `Edge` can hold a `Routes` without the
endpoints and the edge importing each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from proxy.http.errors import error_response

# (request, target): target is the path and query below the host, as the client sent it.
Handler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


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
