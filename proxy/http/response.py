"""The response the proxy streams to the visitor.

aiohttp's server adds `Content-Type: application/octet-stream` to a body without
one, and its own `Server`; a proxy must pass the upstream's headers as they were.
`strip_server_defaults` (an `on_response_prepare` hook, run after aiohttp fills its
defaults) takes back what the upstream did not send, and names the proxy without
versions on its own answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web

from proxy.http.headers import SERVER


class ProxyResponse(web.StreamResponse):
    __slots__ = ("upstream_has_type", "upstream_has_server")

    def __init__(self, *, status: int, reason: str | None,
                 headers: Iterable[tuple[str, str]], hold_headers: bool = False) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self.upstream_has_type = hdrs.CONTENT_TYPE in self.headers
        self.upstream_has_server = hdrs.SERVER in self.headers
        if hold_headers:
            # aiohttp's own switch (web.Response sets it): the head goes out with the
            # first body bytes, one send instead of two. Only for a body already here,
            # so the visitor never waits on the upstream for the headers.
            self._send_headers_immediately = False


async def strip_server_defaults(_request: web.BaseRequest, response: web.StreamResponse) -> None:
    if isinstance(response, ProxyResponse):
        if not response.upstream_has_type:
            response.headers.popall(hdrs.CONTENT_TYPE, None)
        if not response.upstream_has_server:
            response.headers.popall(hdrs.SERVER, None)
    else:
        response.headers[hdrs.SERVER] = SERVER
