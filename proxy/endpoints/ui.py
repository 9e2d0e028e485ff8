"""`{prefix}/ui/`: the operators' UI, static files shipped in `proxy/ui/` (SPEC section 7).

The files are read once, when the admin routes are built, and served from memory by
exact name: no path is ever joined onto the file system, so no request can reach a
file outside the folder. Each answer carries a strong ETag (a hash of the bytes)
with `Cache-Control: no-cache`, so a browser revalidates and gets 304 until the
package changes, and a CSP that allows nothing but this origin.

The shell holds no data: it is served without the admin token (the page asks the
operator for it and sends it as a bearer on every API call). Every API still needs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.endpoint_routes import Handler, below
from proxy.http.errors import error_response

if TYPE_CHECKING:
    from proxy.edge import Edge

UI = "/ui/"
PACKAGE = "proxy.ui"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# 'self' only; inline style attributes are never written (the page sets styles
# through the CSSOM, which the policy permits), and nothing may frame the page.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of `proxy/ui/` by its name ("" is index.html)."""
    assets: dict[str, Asset] = {}
    for entry in resources.files(PACKAGE).iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[entry.name] = Asset(body, TYPES[suffix], etag)
    assets[""] = assets["index.html"]
    return assets


def is_shell(sub: str) -> bool:
    """Whether `sub` (a path below the prefix) is the UI's static shell."""
    return sub == UI.rstrip("/") or sub.startswith(UI)


def ui_handler(edge: Edge) -> Handler:
    """The handler mounted at `/ui/` on the admin routes."""
    assets = load_assets()

    async def serve(request: web.BaseRequest, target: str) -> web.StreamResponse:
        accept = request.headers.get(hdrs.ACCEPT)
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "Method not allowed.", accept,
                                  headers={hdrs.ALLOW: "GET, HEAD"})
        name = below(edge.runtime.prefix, target)[len(UI):]
        asset = assets.get(name)
        if asset is None:
            return error_response(404, "No such file.", accept)
        headers = {hdrs.ETAG: asset.etag, hdrs.CACHE_CONTROL: "no-cache", **SECURITY_HEADERS}
        if asset.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
            return web.Response(status=304, headers=headers)
        headers[hdrs.CONTENT_TYPE] = asset.content_type
        return web.Response(body=asset.body, headers=headers)

    return serve


def ui_redirect(edge: Edge) -> Handler:
    """`{prefix}/ui` without its slash: relative asset and API links need the slash."""

    async def redirect(request: web.BaseRequest, target: str) -> web.StreamResponse:
        return web.Response(status=308, headers={hdrs.LOCATION: edge.runtime.prefix + UI,
                                                 hdrs.CACHE_CONTROL: "no-store"})

    return redirect
