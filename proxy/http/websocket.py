"""WebSocket upgrades, relayed frame by frame in both directions.

The upstream side is aiohttp's client (WebSockets are rare on a careers site, so its
per-connection cost does not matter); subprotocol, text/binary frames and close codes
pass through unchanged.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSMsgType, hdrs, web

from proxy.http.errors import error_response
from proxy.http.response import name_server

log = logging.getLogger("careers_edge.websocket")

# Negotiated again by the client library on the upstream leg.
_WS_OWNED = frozenset({
    b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-protocol",
    b"sec-websocket-extensions", b"sec-websocket-accept",
})


def is_websocket(request: web.BaseRequest) -> bool:
    return (request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
            and request.method == "GET")


async def _pump(src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
                dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse) -> None:
    async for msg in src:
        if msg.type == WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type in (WSMsgType.ERROR,):
            break
    code = src.close_code or 1000
    await dst.close(code=code, message=(src.close_message if hasattr(src, "close_message")
                                         else b"") or b"")


async def relay_websocket(request: web.BaseRequest, session: aiohttp.ClientSession,
                          origin: str, target: str,
                          headers: list[tuple[bytes, bytes]]) -> web.StreamResponse:
    """Relay to `origin` (the main upstream's or a route's) + `target` through
    `session` (the edge's WebSocket client)."""
    protocols = [p.strip() for v in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, [])
                 for p in v.split(",") if p.strip()]
    fwd = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers
           if n.lower() not in _WS_OWNED]
    url = origin.replace("http", "ws", 1) + target
    try:
        upstream = await session.ws_connect(
            aiohttp.client.URL(url, encoded=True), protocols=protocols, headers=fwd,
            timeout=aiohttp.ClientWSTimeout(ws_close=10), autoping=True,
            max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        return error_response(exc.status if 400 <= exc.status < 600 else 502,
                              "The careers site refused the WebSocket.",
                              request.headers.get(hdrs.ACCEPT))
    except (TimeoutError, aiohttp.ClientError, OSError):
        return error_response(502, "The careers site could not be reached.",
                              request.headers.get(hdrs.ACCEPT))
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                   autoping=True, max_msg_size=0)
    name_server(client)             # the 101 is our answer
    try:
        await client.prepare(request)
        tasks = [asyncio.ensure_future(_pump(client, upstream)),
                 asyncio.ensure_future(_pump(upstream, client))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            try:
                await asyncio.wait_for(t, 5)
            except (TimeoutError, Exception):
                t.cancel()
    finally:
        await upstream.close()
        if not client.closed:
            await client.close()
    return client
