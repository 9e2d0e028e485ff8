"""`GET {prefix}/preview?token=T` on the public listener: turn preview on for a browser.

With `[admin] preview_token = T` the right token sets the signed `ce_preview` cookie
for an hour (attribution/preview.py) and answers a small page saying so; from then
on that browser's events are test events. A wrong or missing token is 403; with no
preview token configured the endpoint does not exist (404). The token is compared
in constant time and the page is sent with `Referrer-Policy: no-referrer`, so the
token in its URL leaks to no one.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import hdrs, web

from proxy.attribution.preview import PREVIEW_SECONDS
from proxy.http.errors import error_response
from proxy.runtime import visitor

if TYPE_CHECKING:
    from proxy.edge import Edge

PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>Preview is on</title>"
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;"
    "padding:0 1em;color:#333}</style></head><body><h1>Preview is on</h1>"
    f"<p>For the next {PREVIEW_SECONDS // 60} minutes this browser is a test visitor: "
    "its applications are sent as test events (Meta with the preview test event code, "
    "Indeed as testFire) or not at all, and the operators' view marks them as preview.</p>"
    '<p><a href="/">Go to the careers site</a></p></body></html>'
)


async def preview(request: web.BaseRequest, edge: Edge, target: str) -> web.StreamResponse:
    rt = edge.runtime
    accept = request.headers.get(hdrs.ACCEPT)
    expected = rt.config.admin.preview_token
    if not expected:
        return error_response(404, "No such endpoint.", accept)
    query = target.partition("?")[2]
    given = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"), "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return error_response(403, "This preview link is not valid.", accept)
    secure = visitor(rt, request).proto == "https"
    return web.Response(text=PAGE, content_type="text/html", headers={
        hdrs.SET_COOKIE: rt.attribution.preview.set_cookie(time.time(), secure),
        hdrs.CACHE_CONTROL: "no-store", "Referrer-Policy": "no-referrer",
        hdrs.CONTENT_SECURITY_POLICY: "default-src 'none'; style-src 'unsafe-inline'"})
