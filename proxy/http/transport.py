"""The upstream transport: a lean HTTP/1.1 client the proxy forwards requests through.

A keep-alive pool of asyncio Protocols, each parsing responses with llhttp (httptools);
no per-request session machinery. Import from here:

    pool = UpstreamPool("https://acme.hosted-ats.example", idle_timeout=4.0)
    resp = await pool.request("GET", b"/jobs?q=a%27b", [(b"Accept", b"text/html")])
    async for chunk in resp:          # or: await resp.read_chunk() until b""
        ...
    resp.release()

What goes on the wire is exactly: the request line with the target byte-exact, `Host`,
the caller's headers in order, and `Content-Length` (bytes body or `body_length`) or
`Transfer-Encoding: chunked` (a stream of unknown length). Nothing else is added.

Where each part lives:
    request_head.py        pure: origin parsing, Host value, head encoding, chunk framing
    pool.py                UpstreamPool: acquire/release, request(), stale retry
    upstream_conn.py       UpstreamConnection: the Protocol, the parser callbacks, flow control
    upstream_response.py   UpstreamResponse: head values, bounded body stream, detach after 101
    upstream_errors.py     the exception tree (its docstring draws it)
"""

from __future__ import annotations

from proxy.http.pool import UpstreamPool
from proxy.http.request_head import IDEMPOTENT_METHODS, Origin, parse_origin
from proxy.http.upstream_errors import (
    PoolTimeout,
    RequestBodyError,
    UpstreamBodyError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from proxy.http.upstream_response import READ_HIGH_WATER, UpstreamResponse

__all__ = [
    "IDEMPOTENT_METHODS", "READ_HIGH_WATER", "Origin", "PoolTimeout", "RequestBodyError",
    "UpstreamBodyError", "UpstreamConnectError", "UpstreamError", "UpstreamPool",
    "UpstreamProtocolError", "UpstreamResponse", "UpstreamTimeout", "parse_origin",
]
