"""What can go wrong talking to the upstream, as one exception tree.

    UpstreamError                    base: anything the upstream transport raises
    ├── PoolTimeout                  no free connection within pool_timeout        -> 503
    ├── UpstreamConnectError         refused, DNS, connect timeout, TLS handshake  -> 502
    ├── UpstreamTimeout              no complete response headers in time          -> 504
    ├── UpstreamProtocolError        garbage, or closed before the headers         -> 502
    ├── UpstreamBodyError            response body cut mid-stream (from read_chunk):
    │                                headers are already sent, abort the client connection
    └── RequestBodyError             the streamed request body did not match body_length
                                     (the caller's source ended short or ran long)

The first four happen before any response byte reached the caller, so the proxy can
still answer with its own error page; `UpstreamBodyError` happens after.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base of every error the upstream transport raises."""


class PoolTimeout(UpstreamError):
    """Every connection stayed busy (at `max_connections`) for `pool_timeout` seconds."""


class UpstreamConnectError(UpstreamError):
    """No connection: refused, unresolvable, connect timeout or TLS handshake failure."""


class UpstreamTimeout(UpstreamError):
    """The upstream sent no complete response headers within `header_timeout`."""


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not HTTP/1.x, or closed before the headers."""


class UpstreamBodyError(UpstreamError):
    """The response body ended early (EOF before Content-Length, no terminal chunk)."""


class RequestBodyError(UpstreamError):
    """The streamed request body yielded fewer or more bytes than `body_length`."""
