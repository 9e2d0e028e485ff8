"""Serving the proxy: the application's lifecycle, each request straight to the pipeline.

Every path the proxy serves goes to one handler, so aiohttp's URL dispatcher,
middleware chain and per-request signal lookup are work with no result on the
request path. `EdgeRunner` is aiohttp's public `web.ServerRunner` around `EdgeServer`
(aiohttp's low-level `web.Server`, with its public `request_factory`), and runs the
`web.Application`'s startup, shutdown and cleanup (its parts live in `cleanup_ctx`)
through the application's public methods, in the order `web.AppRunner` does. The
visitor-facing edges are ours: each connection's protocol is wrapped in a
`HeadDeadline` (408 for a head that does not arrive), a malformed request is answered
by `EdgeRequestHandler.handle_error` (one log line, nothing echoed), and a request in
an HTTP version we do not speak is handed over framed as HTTP/1.1 with the version it
named in `EdgeRequest.version_sent` (the pipeline answers it 505). The application
keeps its catch-all route, so it also runs under a plain `web.AppRunner`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11, RawRequestMessage

from proxy.http.errors import error_response
from proxy.http.head_deadline import HeadDeadline
from proxy.http.response import Answer, Finished, ProxyResponse, name_server, written

Handler = Callable[[web.BaseRequest], Awaitable[Answer]]
Count = Callable[[int], None]
HTTP_VERSIONS = (HttpVersion11, HttpVersion10)

log = logging.getLogger("careers_edge.http")

# What a malformed request did wrong, in our words (the parser's messages quote it).
REASONS: tuple[tuple[type[Exception], str], ...] = (
    (http_exceptions.BadHttpMethod, "invalid method"),
    (http_exceptions.BadStatusLine, "invalid request line"),
    (http_exceptions.LineTooLong, "line too long"),
    (http_exceptions.InvalidHeader, "invalid header"),
    (http_exceptions.InvalidURLError, "invalid target"),
    (http_exceptions.PayloadEncodingError, "invalid body framing"),
    (http_exceptions.BadHttpMessage, "malformed request"),
)


def reason_of(exc: BaseException | None) -> str:
    for kind, reason in REASONS:
        if isinstance(exc, kind):
            return reason
    return type(exc).__name__ if exc is not None else "malformed request"


def log_malformed(status: int, remote: str | None, reason: str) -> None:
    """The one line a malformed request leaves in the log: no traceback, no bytes of it."""
    log.warning("%d for a malformed request from %s: %s", status, remote, reason)


class EdgeRequest(web.BaseRequest):
    """A request outside any application, with the HTTP version its client named."""

    __slots__ = ("version_sent",)

    def __init__(self, *args: Any, version_sent: HttpVersion | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version_sent = version_sent or self.version


def client_version(request: web.BaseRequest) -> HttpVersion:
    """The HTTP version the client's request line named."""
    return request.version_sent if isinstance(request, EdgeRequest) else request.version


class EdgeRequestHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, answering malformed requests our way."""

    def __init__(self, manager: EdgeServer, deadline_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.count = manager.count
        self.finished = Finished()          # what aiohttp gets back for our responses
        self.deadline = HeadDeadline(self, kwargs["loop"], deadline_timeout,
                                     lambda: self.count(408))

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500 and isinstance(exc, ConnectionError):
            detail = "The connection was lost."       # the visitor went away: nothing to log
        elif status >= 500:
            log.error("%d serving %s %s", status, request.method, request.path, exc_info=exc)
            detail = "Something went wrong on our side."
        else:
            log_malformed(status, request.remote, reason_of(exc))
            detail = "The request could not be understood."
        if request.writer.output_size > 0:     # a response began: nothing more to say
            raise ConnectionError("response already started")
        resp = error_response(status, detail)
        resp.force_close()
        self.count(status)
        return resp


class EdgeServer(web.Server):
    """`web.Server` whose connections are `EdgeRequestHandler`s in a `HeadDeadline`."""

    def __init__(self, handler: Handler, *, header_timeout: float, count: Count,
                 loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(self.serve, request_factory=self.make_request, loop=loop, **kwargs)
        self.pipeline = handler
        self.header_timeout = header_timeout
        self.count = count
        self.event_loop = loop
        self.handler_kwargs = kwargs

    def __call__(self) -> HeadDeadline:  # type: ignore[override]
        handler = EdgeRequestHandler(self, self.header_timeout, loop=self.event_loop,
                                     **self.handler_kwargs)
        return handler.deadline

    def make_request(self, message: RawRequestMessage, payload: Any,
                     protocol: web.RequestHandler, writer: Any,
                     task: asyncio.Task[None]) -> web.BaseRequest:
        if isinstance(protocol, EdgeRequestHandler):
            protocol.deadline.head_complete(payload)
        sent = message.version
        if sent in HTTP_VERSIONS:
            return web.BaseRequest(message, payload, protocol, writer, task, self.event_loop)
        # Answered (505) in a version the client may read, and never kept alive.
        message = RawRequestMessage(
            message.method, message.path, HttpVersion11, message.headers,
            message.raw_headers, True, message.compression, False, message.chunked,
            message.url)
        return EdgeRequest(message, payload, protocol, writer, task, self.event_loop,
                           version_sent=sent)

    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """The pipeline, with the response finished before the head clock runs again."""
        protocol = request.protocol
        keep_alive = False
        try:
            resp = await self.pipeline(request)
            if isinstance(resp, ProxyResponse):
                finished = await written(request, resp, protocol.finished
                                         if isinstance(protocol, EdgeRequestHandler) else None)
                keep_alive = bool(finished.keep_alive)
                return finished
            name_server(resp)
            try:
                await resp.prepare(request)
                await resp.write_eof()
            except ConnectionError:
                return resp                      # the visitor went away
            keep_alive = bool(resp.keep_alive) and resp.status != 101
            return resp
        finally:
            if isinstance(protocol, EdgeRequestHandler):
                protocol.deadline.request_done(keep_alive)


class EdgeRunner(web.ServerRunner):
    """Serves `EdgeServer`, with the application's lifecycle around it."""

    __slots__ = ("app",)

    def __init__(self, app: web.Application, server: EdgeServer, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.app = app

    async def setup(self) -> None:
        app = self.app
        app.on_startup.freeze()     # as web.AppRunner: startup may still add routes
        await app.startup()
        app.freeze()
        await super().setup()

    async def shutdown(self) -> None:
        await self.app.shutdown()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.app.cleanup()


def edge_server_runner(app: web.Application, handler: Handler, *, header_timeout: float,
                       count: Count, handle_signals: bool = False,
                       shutdown_timeout: float = 60.0, **kwargs: Any) -> EdgeRunner:
    """`app` served by `EdgeServer` with `handler`; `kwargs` go to each connection's
    `RequestHandler` (aiohttp's `handler_args`: limits, timeouts, access log)."""
    server = EdgeServer(handler, header_timeout=header_timeout, count=count,
                        loop=asyncio.get_running_loop(), **kwargs)
    return EdgeRunner(app, server, handle_signals=handle_signals,
                      shutdown_timeout=shutdown_timeout)
