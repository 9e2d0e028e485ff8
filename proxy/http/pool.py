"""The keep-alive connection pool to one upstream origin, and `request()` over it.

Idle connections form a LIFO stack (the warmest first); one older than `idle_timeout`
is closed, on acquire and by a sweep timer, so the pool never reuses a connection the
upstream may be about to drop. At most `max_connections` exist; callers beyond that
wait in FIFO order for a released connection or a freed slot, each up to its
`pool_timeout`. A reused connection found closed before any response byte retries
once on a new one, for idempotent methods whose body was not a stream already read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterable

from proxy.http.request_head import (
    BODY_METHODS,
    CHUNKED,
    IDEMPOTENT_METHODS,
    LAST_CHUNK,
    NO_BODY_FOR_POST,
    Origin,
    chunk,
    content_length,
    encode_head,
    method_bytes,
    parse_origin,
)
from proxy.http.upstream_conn import StaleConnection, UpstreamConnection
from proxy.http.upstream_errors import (
    PoolTimeout,
    RequestBodyError,
    UpstreamConnectError,
    UpstreamProtocolError,
)
from proxy.http.upstream_response import UpstreamResponse

Body = bytes | bytearray | memoryview | AsyncIterable[bytes] | None

SMALL_BODY = 16 * 1024    # a bytes body up to this size goes out in the head's write


class UpstreamPool:
    def __init__(self, origin: str, *, max_connections: int = 256,
                 connect_timeout: float = 10.0, idle_timeout: float = 4.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.origin: Origin = parse_origin(origin)
        self._ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[UpstreamConnection] = []       # oldest first; reuse from the end
        self._open = 0                                  # connected or connecting
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self._conns: set[UpstreamConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def host_header(self) -> bytes:
        """The Host value sent upstream: "host", or "host:port" for a non-default port."""
        return self.origin.host_header

    @property
    def stats(self) -> dict[str, int]:
        return {"open": self._open, "idle": len(self._idle), "waiting": len(self._waiters)}

    async def request(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: Body = None, *, body_length: int | None = None,
                      header_timeout: float = 30.0,
                      pool_timeout: float | None = None) -> UpstreamResponse:
        """Send one request; return once the response headers are in.

        The body, if any, is then read from the response; `release()` it when done.
        With every connection busy, waits up to `pool_timeout` s (None: no limit) for
        one, else raises PoolTimeout.
        """
        if body is None:
            framing = NO_BODY_FOR_POST if method in BODY_METHODS else b""
        elif isinstance(body, (bytes, bytearray, memoryview)):
            framing = content_length(len(body))
        elif body_length is not None:
            framing = content_length(body_length)
        else:
            framing = CHUNKED
        head = encode_head(method_bytes(method), target, self.origin.host_header,
                           headers, framing)
        try:
            conn = self._take_idle() or await self._acquire(wait=pool_timeout)
            return await self._exchange(conn, head, body, body_length, method == "HEAD",
                                        header_timeout)
        except StaleConnection as exc:
            if method not in IDEMPOTENT_METHODS:
                raise UpstreamProtocolError("upstream closed a reused connection") from exc
        try:       # once, on a connection never used before
            return await self._exchange(await self._acquire(fresh=True, wait=pool_timeout),
                                        head, body, body_length, method == "HEAD", header_timeout)
        except StaleConnection as exc:
            raise UpstreamProtocolError("upstream closed the connection") from exc

    async def close(self) -> None:
        """Close every connection, idle or busy; later requests fail."""
        self._stop_taking()
        self._idle.clear()
        for conn in list(self._conns):
            conn.abort()
        await asyncio.sleep(0)          # let connection_lost callbacks run

    def retire(self) -> None:
        """Take no new request; close idle connections now and busy ones once released."""
        self._stop_taking()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.idle = False
            conn.close()

    def _stop_taking(self) -> None:
        """Refuse new requests: stop the idle sweeper and fail every waiter."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamConnectError("upstream pool closed"))

    # -- one exchange -------------------------------------------------------------------

    async def _exchange(self, conn: UpstreamConnection, head: bytes, body: Body,
                        body_length: int | None, is_head: bool,
                        timeout: float) -> UpstreamResponse:
        if conn.closed:                    # went away between release and now
            raise StaleConnection() if conn.served else UpstreamProtocolError("closed")
        waiter = conn.begin(is_head)
        transport = conn.transport
        assert transport is not None
        try:
            if body is None:
                transport.write(head)
            elif isinstance(body, (bytes, bytearray, memoryview)):
                if len(body) <= SMALL_BODY:
                    transport.write(head + body)
                else:
                    transport.write(head)
                    transport.write(body)
            else:
                transport.write(head)
                try:
                    await self._send_stream(conn, waiter, body, body_length, timeout)
                    return await conn.wait_head(waiter, timeout)
                except StaleConnection as exc:     # part of the stream is gone: no retry
                    raise UpstreamProtocolError("upstream closed the connection") from exc
            conn.head_deadline(waiter, timeout)
            return await waiter
        except BaseException:
            if not waiter.done():
                waiter.cancel()
            conn.abort()
            raise

    @staticmethod
    async def _send_stream(conn: UpstreamConnection, waiter: asyncio.Future[UpstreamResponse],
                           body: AsyncIterable[bytes], body_length: int | None,
                           timeout: float) -> None:
        """Write a streamed body, waiting for the transport to drain when it asks to."""
        iter_any = getattr(body, "iter_any", None)    # aiohttp's StreamReader iterates lines
        if iter_any is not None:
            body = iter_any()
        write = conn.transport.write  # type: ignore[union-attr]
        chunked = body_length is None
        sent = 0
        conn.reusable = False          # until the whole body is out
        async for data in body:
            if waiter.done() or conn.closed:
                return                 # the upstream answered (or left) early
            if not data:
                continue
            if chunked:
                write(chunk(data))
            else:
                sent += len(data)
                if sent > body_length:  # type: ignore[operator]
                    raise RequestBodyError(f"request body longer than {body_length} bytes")
                write(data)
            if conn.write_paused:
                try:
                    await conn.drain(timeout)
                except ConnectionResetError:
                    return             # wait_head reports what the upstream did
        if waiter.done() or conn.closed:
            return
        if chunked:
            write(LAST_CHUNK)
        elif sent != body_length:
            raise RequestBodyError(f"request body ended at {sent} of {body_length} bytes")
        conn.reusable = True

    # -- acquiring and releasing connections ---------------------------------------------

    def _take_idle(self) -> UpstreamConnection | None:
        """The warmest idle connection still fit for reuse, without awaiting anything
        (None: `_acquire` decides, and raises for a closed pool)."""
        loop = self._loop
        if loop is None or self._closed:
            return None
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if conn.closed:
                continue
            if loop.time() - conn.idle_since >= self._idle_timeout:
                conn.close()
                continue
            return conn
        return None

    async def _acquire(self, fresh: bool = False, wait: float | None = None
                       ) -> UpstreamConnection:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._closed:
            raise UpstreamConnectError("upstream pool closed")
        if not fresh:
            conn = self._take_idle()
            if conn is not None:
                return conn
        if self._open >= self._max:
            waiter: asyncio.Future[UpstreamConnection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(wait):
                    try:
                        handed = await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled() and \
                                waiter.exception() is None:
                            self._give_back(waiter.result())
                        raise
            except TimeoutError:
                raise PoolTimeout(f"no free upstream connection within {wait:g} s") from None
            if handed is not None:
                return handed
        else:
            self._open += 1             # this slot is ours from here
        return await self._connect(loop)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
        origin = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, loop), origin.host, origin.port,
                    ssl=self._ssl, server_hostname=origin.host if self._ssl else None)
        except BaseException as exc:
            self._give_back(None)
            if isinstance(exc, TimeoutError):
                raise UpstreamConnectError(
                    f"connect to {origin.host}:{origin.port} timed out") from exc
            if isinstance(exc, OSError):    # refused, DNS, TLS (ssl.SSLError is an OSError)
                raise UpstreamConnectError(
                    f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
            raise
        if conn.closed or self._closed:
            conn.abort()
            self._give_back(None)
            raise UpstreamConnectError("connection closed while opening")
        conn.counted = True
        self._conns.add(conn)
        return conn

    def _give_back(self, conn: UpstreamConnection | None) -> None:
        """Undo an acquire: return a connection, or free the slot we held."""
        if conn is not None:
            self._reuse(conn)
        else:
            self._open -= 1
            self._wake_slot()

    def _wake_slot(self) -> None:
        waiters = self._waiters
        while waiters and self._open < self._max:
            waiter = waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)   # "open a connection of your own"
                return

    # -- hooks called by UpstreamConnection ------------------------------------------------

    def _reuse(self, conn: UpstreamConnection) -> None:
        if self._closed:
            conn.close()
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        conn.idle_since = self._loop.time()  # type: ignore[union-attr]
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(  # type: ignore[union-attr]
                conn.idle_since + self._idle_timeout, self._sweep)

    def _conn_lost(self, conn: UpstreamConnection) -> None:
        if conn.idle:
            conn.idle = False
            try:
                self._idle.remove(conn)
            except ValueError:
                pass
        self._forget(conn)

    def _forget(self, conn: UpstreamConnection) -> None:
        if conn.counted:
            conn.counted = False
            self._conns.discard(conn)
            self._open -= 1
            self._wake_slot()

    def _sweep(self) -> None:
        self._sweeper = None
        idle = self._idle
        deadline = self._loop.time() - self._idle_timeout  # type: ignore[union-attr]
        expired = 0
        while expired < len(idle) and idle[expired].idle_since <= deadline:
            expired += 1
        for conn in idle[:expired]:
            conn.idle = False
            conn.close()
        del idle[:expired]
        if idle:
            self._sweeper = self._loop.call_at(  # type: ignore[union-attr]
                idle[0].idle_since + self._idle_timeout, self._sweep)
