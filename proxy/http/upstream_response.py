"""One upstream response: status, raw headers, and its body as a bounded stream.

The connection's parser pushes body bytes in (`_feed`); the caller pulls them out with
`read_chunk()` or `async for`. When more than `READ_HIGH_WATER` bytes wait unread, the
connection stops reading from the socket until the caller catches up, so a 100 MB
download never sits in memory.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, Self

from proxy.http.upstream_errors import UpstreamBodyError

READ_HIGH_WATER = 256 * 1024   # unread body bytes that make the connection stop reading

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"


class Connection(Protocol):
    """What a response asks of the connection its body arrives on
    (`upstream_conn.UpstreamConnection`, which builds the response)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None: ...

    def detach(self) -> tuple[asyncio.StreamReader, asyncio.StreamReaderProtocol,
                              asyncio.Transport]:
        """Hand the raw connection over after 101."""
        ...


class UpstreamResponse:
    """Response head plus a pull-based body.

    Always `release()` it (or use `async with`): while its body is in flight the
    connection holds it, so a forgotten response is never collected and pins its
    connection until the upstream closes it.
    """

    __slots__ = (
        "_chunks", "_conn", "_done", "_exc", "_framing", "_is_head", "_paused", "_size",
        "_upgraded", "_waiter", "headers", "reason", "status", "version",
    )

    def __init__(self, conn: Connection, status: int, reason: bytes,
                 version: tuple[int, int], headers: list[tuple[bytes, bytes]],
                 is_head: bool) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self._is_head = is_head
        self._conn: Connection | None = conn   # None once the body is complete
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._exc: BaseException | None = None
        self._paused = False
        self._framing: tuple[int | None, bool] | None = None
        self._upgraded: Connection | None = None   # set on 101, until detached

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} {self.reason!r}>"

    # -- head -------------------------------------------------------------------

    def has_body(self) -> bool:
        """False for a HEAD request's response, 1xx, 204 and 304."""
        s = self.status
        return not (self._is_head or s < 200 or s == 204 or s == 304)

    def _scan_framing(self) -> tuple[int | None, bool]:
        if self._framing is None:
            length: int | None = None
            chunked = False
            for name, value in self.headers:
                n = len(name)
                if n == 14 and name.lower() == _CONTENT_LENGTH:
                    length = int(value.strip())   # the parser already rejected bad values
                elif n == 17 and name.lower() == _TRANSFER_ENCODING:
                    chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            self._framing = (None if chunked else length, chunked)
        return self._framing

    @property
    def content_length(self) -> int | None:
        """The Content-Length the upstream declared (None when absent or chunked)."""
        return self._scan_framing()[0]

    @property
    def chunked(self) -> bool:
        return self._scan_framing()[1]

    def _until_close(self) -> bool:
        """The body is delimited by the upstream closing the connection."""
        length, chunked = self._scan_framing()
        return self.has_body() and length is None and not chunked

    # -- body, fed by the connection ------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        if self._size > READ_HIGH_WATER and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause_reading()

    def _finish(self, exc: BaseException | None = None) -> None:
        """Body complete (exc None) or cut short; the connection is no longer ours."""
        self._done = True
        self._exc = exc
        self._conn = None
        self._paused = False
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # -- body, read by the caller -----------------------------------------------

    async def read_chunk(self) -> bytes:
        """The next body bytes (everything buffered, joined); b"" at the end.

        Raises UpstreamBodyError (after the bytes that did arrive) when the body was cut.
        """
        chunks = self._chunks
        if not chunks:
            if not self._done:
                conn = self._conn
                assert conn is not None
                waiter = self._waiter = conn.loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
            if not chunks:
                if self._exc is not None:
                    raise self._exc
                return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            if self._conn is not None:
                self._conn.resume_reading()
        return data

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read_chunk()
        if not data:
            raise StopAsyncIteration
        return data

    async def read(self) -> bytes:
        """The whole body (for small responses only)."""
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    @property
    def complete(self) -> bool:
        """The upstream finished sending the body (it may still wait unread here)."""
        return self._done and self._exc is None

    def release(self) -> None:
        """Done with this response: a connection still busy with its body is closed.

        A connection whose body arrived completely went back to the pool already.
        """
        for conn in (self._conn, self._upgraded):
            if conn is not None:
                conn.abort()
        self._conn = self._upgraded = None
        if not self._done:
            self._finish(UpstreamBodyError("response released before its end"))
        self._chunks.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    async def detach(self) -> tuple[asyncio.StreamReader, asyncio.Transport]:
        """After 101 Switching Protocols: the raw connection, for a WebSocket relay.

        The pool forgets the connection; the caller closes the transport when done.
        """
        reader, _, transport = self._take_upgraded().detach()
        return reader, transport

    def detach_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Like `detach`, as a reader/writer pair (the writer has `drain()`).

        Keep the writer referenced: a collected StreamWriter closes its transport.
        """
        conn = self._take_upgraded()
        reader, proto, transport = conn.detach()
        return reader, asyncio.StreamWriter(transport, proto, reader, conn.loop)

    def _take_upgraded(self) -> Connection:
        conn = self._upgraded
        if conn is None:
            raise RuntimeError("only a live 101 Switching Protocols response can be detached")
        self._upgraded = None
        return conn
