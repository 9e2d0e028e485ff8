"""The deadline for a visitor's request head, which aiohttp's server does not keep.

aiohttp closes a connection left idle between requests (`keepalive_timeout`), but a
client that opens a connection and sends nothing, or a head one byte every few
seconds, is otherwise kept as long as it likes. `HeadDeadline` wraps aiohttp's
protocol for one connection and passes every call straight through; the server tells
it when a parsed head was handed over (`head_complete`) and when its response went
out (`request_done`). The deadline runs from the connection's start, and from the
first byte after a response, until the next head is handed over; when it passes, the
visitor gets a 408 and the connection is closed, as nginx's `client_header_timeout`.

Bytes arriving while a request is served belong to its body until that body ended;
after that they are the next (pipelined) request, whose deadline starts when the
current response is done. Bytes that came in the same read as a head (or as the
end of a body) cannot be told apart from it without parsing; a next request begun
there starts the clock with its next byte, and if none comes, keep-alive's timeout
closes the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate
from typing import Protocol

from proxy.http.errors import NOSNIFF, error_page, title_of
from proxy.http.headers import SERVER


class Body(Protocol):
    def is_eof(self) -> bool: ...


def timeout_answer() -> bytes:
    """The whole 408 response, written straight to the socket: no request to answer."""
    page = error_page(408, "The request did not arrive in time.").encode()
    return (
        f"HTTP/1.1 408 {title_of(408)}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\nServer: {SERVER}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(page)}\r\n"
        f"{NOSNIFF[0]}: {NOSNIFF[1]}\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + page


class _NoMore:
    """The connection serves no further request: its bytes are never a head."""

    def is_eof(self) -> bool:
        return False


NO_MORE = _NoMore()


class HeadDeadline(asyncio.Protocol):
    __slots__ = ("body", "deadline", "inner", "loop", "on_expire", "pending", "timeout",
                 "timer", "transport")

    def __init__(self, inner: asyncio.Protocol, loop: asyncio.AbstractEventLoop,
                 timeout: float, on_expire: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.loop = loop
        self.timeout = timeout
        self.on_expire = on_expire
        self.transport: asyncio.Transport | None = None
        self.deadline: float | None = None   # None: no head is being waited for
        self.timer: asyncio.TimerHandle | None = None
        self.body: Body | None = None        # the body of the request being served
        self.pending = False                 # bytes of a next request came during this one

    # -- told by the server ---------------------------------------------------------

    def head_complete(self, body: Body) -> None:
        """aiohttp parsed a head and hands the request over; `body` is its payload."""
        self.deadline = None                 # the timer, if any, finds nothing to do
        self.body = body
        self.pending = False

    def request_done(self, keep_alive: bool = True) -> None:
        """The response went out; a next request's bytes already here start the clock.
        Without keep-alive (a close, or after a protocol upgrade) no head comes next."""
        self.body = None
        if not keep_alive:
            self.body = NO_MORE
        elif self.pending:
            self.pending = False
            self.arm()

    # -- asyncio.Protocol, passed through -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.inner.connection_made(transport)
        self.arm()

    def data_received(self, data: bytes) -> None:
        body = self.body
        if body is None:
            if self.deadline is None:
                self.arm()
        elif body.is_eof():
            self.pending = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadline = None
        self.body = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- the clock ------------------------------------------------------------------

    def arm(self) -> None:
        # One lazily re-armed timer per connection: deadlines only move later, so most
        # requests cost a clock read, not a timer.
        self.deadline = deadline = self.loop.time() + self.timeout
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.body is not None:
            return
        if self.loop.time() < deadline:
            self.timer = self.loop.call_at(deadline, self._check)
            return
        self.deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(timeout_answer())
        transport.close()
        if self.on_expire is not None:
            self.on_expire()
