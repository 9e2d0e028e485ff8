"""The operators' listener (`[admin] listen`): healthz, readyz, metrics under the prefix.

Everything an operator reaches is one `Routes` (`edge.admin`): mount a further page
or API there and it is served on this listener, refused with 404 on the public one,
and behind the admin token, in one line:

    edge.admin.add("GET", "/api/funnel", handler)       # (request, target) -> response
    edge.admin.mount("/ui/", ui_handler)                 # a whole subtree

With `[admin] token` set every path but healthz and the UI's static shell (which
holds no data; its page sends the token on every API call) needs
`Authorization: Bearer TOKEN` (compared in constant time); without it the answer is
401 with `WWW-Authenticate`.
The token is read from the current rules, so a reload can rotate it. Requests here
are access-logged but never counted as visitors' responses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.conversions.outbox import observe_backlog
from proxy.endpoint_routes import RequestHandler, Routes, below
from proxy.endpoints.events_api import authorized
from proxy.endpoints.health import healthz, readyz
from proxy.endpoints.router import HEALTHZ
from proxy.endpoints.ui import UI, is_shell, ui_handler, ui_redirect
from proxy.http.errors import error_response
from proxy.http.response import name_server

if TYPE_CHECKING:
    from proxy.edge import Edge

REALM = 'Bearer realm="careers-edge admin"'


def admin_routes(edge: Edge) -> Routes:
    routes = Routes()
    routes.add_plain("GET", HEALTHZ, lambda r: healthz(edge))
    routes.add_plain("GET", "/readyz", lambda r: readyz(edge))
    routes.add_plain("GET", "/metrics", lambda r: metrics(edge))
    routes.add("GET", UI.rstrip("/"), ui_redirect(edge))
    routes.mount(UI, ui_handler(edge))
    return routes


async def metrics(edge: Edge) -> web.Response:
    try:
        await observe_backlog(edge.outbox, edge.metrics)
    except Exception:
        pass
    body, content_type = edge.metrics.render()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type,
                                            hdrs.CACHE_CONTROL: "no-store"})


def admin_handler(edge: Edge) -> RequestHandler:
    """The admin listener's request handler (for `web.Server`)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        resp = await answer(request)
        name_server(resp)           # aiohttp would name itself, with its version
        return edge.finish(request, resp, started, count=False,
                           quiet=edge.access_log.quiet(request.raw_path, edge.runtime.prefix))

    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        rt = edge.runtime
        target = request.raw_path
        accept = request.headers.get(hdrs.ACCEPT)
        if not target.startswith(rt.prefix_slash):
            return error_response(404, "No such endpoint.", accept)
        sub = below(rt.prefix, target)
        token = rt.config.admin.token
        open_path = sub == HEALTHZ or is_shell(sub)
        if token and not open_path and not authorized(request.headers.get(hdrs.AUTHORIZATION),
                                                      token):
            return error_response(401, "A bearer token is required.", accept,
                                  headers={hdrs.WWW_AUTHENTICATE: REALM})
        return await edge.admin.dispatch(request, sub, target)

    return handle
