"""`GET {prefix}/api/stream`: the live feed (`ops.live`) as server-sent events.

`event: conversion` (an event, as in `/api/events`) and `event: delivery` (a
delivery plus its `event_id`), `retry: 2000` first and a `: ping` comment after 15 s
of quiet. A reader that went away is let go within a second (its connection is
closing), or at the next write.
The stream ends when the subscriber is dropped for falling behind or the proxy shuts
down (`Live.close`), so a stream never holds a shutdown. Per worker: see `ops.live`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.http.errors import error_response
from proxy.http.headers import SERVER

if TYPE_CHECKING:
    from proxy.edge import Edge

PING_SECONDS = 15.0
CHECK_SECONDS = 1.0          # how soon a reader that went away is noticed when all is quiet
RETRY_MS = 2000
EVENT_STREAM = "text/event-stream"


def stream_headers() -> dict[str, str]:
    return {hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-store",
            hdrs.SERVER: SERVER,            # prepared here, before the listener could name it
            "X-Accel-Buffering": "no"}       # nginx in front: do not buffer the stream


def gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream(edge: Edge, request: web.BaseRequest) -> web.StreamResponse:
    if request.method == "HEAD":
        return web.Response(headers=stream_headers())
    sub = edge.live.subscribe()
    if sub is None:
        return error_response(503, "Too many live streams, or shutting down.",
                              request.headers.get(hdrs.ACCEPT))
    resp = web.StreamResponse(headers=stream_headers())
    try:
        await resp.prepare(request)
        await resp.write(b"retry: %d\n\n" % RETRY_MS)
        quiet_since = time.monotonic()
        while not sub.ended and not gone(request):
            item = await sub.next(min(CHECK_SECONDS, PING_SECONDS))
            if item is not None:
                kind, data = item
                await resp.write(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")
                quiet_since = time.monotonic()
            elif not sub.ended and time.monotonic() - quiet_since >= PING_SECONDS:
                await resp.write(b": ping\n\n")
                quiet_since = time.monotonic()
    except (ConnectionResetError, RuntimeError):     # the reader went away mid-write
        pass
    finally:
        sub.close()
    return resp
