"""One keep-alive HTTP/1.1 connection to the upstream: an asyncio Protocol around llhttp.

Callback-driven, no task per connection: `data_received` feeds httptools' response
parser, whose callbacks build an `UpstreamResponse` and push body bytes into it. The
pool drives one exchange at a time (`begin` -> write -> `wait_head`); when the body is
complete and the upstream allows keep-alive, the connection hands itself back to the
pool (`_reuse`), even if the caller has not read the buffered body yet.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from proxy.http.upstream_errors import (
    UpstreamBodyError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from proxy.http.upstream_response import UpstreamResponse

_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}


class StaleConnection(Exception):
    """A reused connection was closed by the upstream before any response byte."""


class PoolHooks(Protocol):
    def _reuse(self, conn: UpstreamConnection) -> None: ...
    def _conn_lost(self, conn: UpstreamConnection) -> None: ...
    def _forget(self, conn: UpstreamConnection) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_busy", "_deadline", "_drain_waiter", "_garbage", "_got_bytes", "_head_waiter",
        "_headers", "_interim", "_is_head", "_keep_alive", "_parser", "_pool", "_read_paused",
        "_reason", "_response", "_timer", "_upgrade_tail", "closed", "counted", "idle",
        "idle_since", "loop", "reusable", "served", "transport", "write_paused",
    )

    def __init__(self, pool: PoolHooks, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = False         # the pool counts it toward max_connections
        self.idle = False            # sitting in the pool's idle stack
        self.idle_since = 0.0
        self.served = 0              # exchanges completed: > 0 means "reused"
        self.reusable = True         # False once an exchange left the stream out of sync
        self._pool = pool
        self._parser = HttpResponseParser(self)
        self._busy = False
        self._is_head = False
        self._got_bytes = False
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._garbage = False
        self._keep_alive: bool | None = None     # set when an exchange just completed
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._upgrade_tail: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None     # header deadline check
        self._deadline = 0.0

    # -- driven by the pool ---------------------------------------------------------

    def begin(self, is_head: bool) -> asyncio.Future[UpstreamResponse]:
        self._busy = True
        self._is_head = is_head
        self._got_bytes = False
        self._interim = False
        waiter = self._head_waiter = self.loop.create_future()
        return waiter

    async def wait_head(self, waiter: asyncio.Future[UpstreamResponse],
                        timeout: float) -> UpstreamResponse:
        self.head_deadline(waiter, timeout)
        return await waiter

    def head_deadline(self, waiter: asyncio.Future[UpstreamResponse], timeout: float) -> None:
        """Fail `waiter` if the response headers are not in within `timeout` s (the pool
        awaits the waiter itself: no coroutine per request for this)."""
        if waiter.done():
            return
        # One lazily re-armed timer per connection instead of one per request: with a
        # steady timeout, deadlines only grow, so it fires about once per `timeout`.
        deadline = self._deadline = self.loop.time() + timeout
        if self._timer is None or deadline < self._timer.when():
            self._cancel_timer()
            self._timer = self.loop.call_at(deadline, self._check_deadline)

    async def drain(self, timeout: float) -> None:
        """Wait until the transport's write buffer drained (or the response began)."""
        if self.closed:
            raise ConnectionResetError("upstream closed the connection")
        waiter = self._drain_waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._on_drain_timeout, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._drain_waiter = None

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.closed and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if not self.closed:
                self.transport.resume_reading()  # type: ignore[union-attr]

    def detach(self) -> tuple[asyncio.StreamReader, asyncio.StreamReaderProtocol,
                              asyncio.Transport]:
        """Hand the raw connection over after 101: the pool forgets it."""
        self._pool._forget(self)
        self._cancel_timer()
        transport = self.transport
        assert transport is not None
        reader = asyncio.StreamReader(loop=self.loop)
        data = b"".join(self._upgrade_tail or ())
        self._upgrade_tail = None
        if data:
            reader.feed_data(data)
        proto = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        if self.closed:
            reader.feed_eof()
        else:
            transport.set_protocol(proto)
            proto.connection_made(transport)
            self.resume_reading()
        return reader, proto, transport

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._upgrade_tail is not None:    # after 101, before detach
            self._upgrade_tail.append(data)
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as upgrade:
            self._on_upgrade(data[upgrade.args[0]:])
        except HttpParserError as exc:
            self._fail(exc)
        if self._garbage:
            self._fail(UpstreamProtocolError("unsolicited bytes from the upstream"))
        elif self._keep_alive is not None:
            keep, self._keep_alive = self._keep_alive, None
            if keep and self.reusable:
                self._pool._reuse(self)
            else:
                self.close()

    def eof_received(self) -> bool:
        return False                        # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._busy:
            self._busy = False
            waiter, self._head_waiter = self._head_waiter, None
            response, self._response = self._response, None
            if waiter is not None and not waiter.done():
                if not self._got_bytes and self.served:
                    waiter.set_exception(StaleConnection())
                else:
                    waiter.set_exception(UpstreamProtocolError(
                        "upstream closed the connection before the response headers"))
            elif response is not None:
                if response._until_close():
                    response._finish()
                else:
                    response._finish(UpstreamBodyError(
                        "upstream closed the connection before the end of the body"))
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("upstream closed the connection"))
        self._pool._conn_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._busy or self._response is not None:
            self._garbage = True
        self._headers = []
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True            # 100 Continue, 103 Early Hints: skipped
            return
        version = parser.get_http_version()
        response = UpstreamResponse(
            self, status, self._reason,
            _VERSIONS.get(version) or tuple(map(int, version.split("."))),  # type: ignore[arg-type]
            self._headers, self._is_head)
        self._response = response
        waiter, self._head_waiter = self._head_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        self._wake_drain()                  # an early response ends a request body upload
        if self._is_head and status != 101:
            # llhttp cannot be told the request was HEAD: end here, parse on afresh.
            keep = parser.should_keep_alive()
            self._parser = HttpResponseParser(self)
            self._complete(keep)

    def on_body(self, data: bytes) -> None:
        response = self._response
        if response is None:
            self._garbage = True
        else:
            response._feed(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        response = self._response
        if response is None:
            self._garbage = True
        elif response.status != 101:        # an upgrade ends in HttpParserUpgrade
            self._complete(self._parser.should_keep_alive())

    # -- internals ------------------------------------------------------------------------

    def _complete(self, keep_alive: bool) -> None:
        response, self._response = self._response, None
        self._busy = False
        self.served += 1
        self.resume_reading()
        response._finish()  # type: ignore[union-attr]
        self._keep_alive = keep_alive       # acted on once the parser returns

    def _on_upgrade(self, tail: bytes) -> None:
        response, self._response = self._response, None
        self._busy = False
        if response is None or response.status != 101:
            self._fail(UpstreamProtocolError("unexpected protocol upgrade"))
            return
        self.pause_reading()
        self._upgrade_tail = [tail] if tail else []
        response._finish()
        response._upgraded = self

    def _fail(self, exc: Exception) -> None:
        """Garbage from the upstream: fail whatever waits, drop the connection."""
        waiter, self._head_waiter = self._head_waiter, None
        response, self._response = self._response, None
        if waiter is not None and not waiter.done():
            err = exc if isinstance(exc, UpstreamProtocolError) else UpstreamProtocolError(
                f"invalid response from upstream: {exc}")
            waiter.set_exception(err)
        elif response is not None:
            response._finish(UpstreamBodyError(f"invalid response body from upstream: {exc}"))
        self._busy = False
        self._keep_alive = None
        self.abort()

    def _wake_drain(self) -> None:
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._head_waiter
        if waiter is None or waiter.done() or self.closed:
            return                          # not waiting for headers now
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            return
        self._head_waiter = None
        waiter.set_exception(UpstreamTimeout("no response headers from upstream in time"))
        self.abort()

    def _on_drain_timeout(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamTimeout("upstream stopped reading the request body"))
            self.abort()

