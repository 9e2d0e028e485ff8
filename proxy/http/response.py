"""The response the proxy streams to the visitor.

aiohttp's server adds `Content-Type: application/octet-stream` to a body without
one, and its own `Server`; a proxy must pass the upstream's headers as they were.
`strip_server_defaults` (an `on_response_prepare` hook, run after aiohttp fills its
defaults) takes back what the upstream did not send.
"""

from __future__ import annotations

from aiohttp import hdrs, web


class ProxyResponse(web.StreamResponse):
    __slots__ = ("upstream_has_type", "upstream_has_server")

    def __init__(self, *, status: int, reason: str | None, has_type: bool,
                 has_server: bool) -> None:
        super().__init__(status=status, reason=reason)
        self.upstream_has_type = has_type
        self.upstream_has_server = has_server


async def strip_server_defaults(_request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, ProxyResponse):
        if not response.upstream_has_type:
            response.headers.popall(hdrs.CONTENT_TYPE, None)
        if not response.upstream_has_server:
            response.headers.popall(hdrs.SERVER, None)
