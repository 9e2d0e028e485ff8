"""Helpers for the edge-safety tests: a recording upstream and a raw-socket client.

The upstream records each request it *handles* (method, path, body size and hash),
so a test can show what was never forwarded. `RawConnection` speaks bytes to the
proxy and reads responses by their framing, so slow and hostile clients are
exactly what the test writes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

# How long a test waits for something the proxy must do on its own (a 408, a close)
# before calling it missing: generous for a loaded machine; never a measured time.
PATIENCE = 30.0


async def eventually(condition: Callable[[], object], timeout: float = PATIENCE) -> None:
    """Wait until `condition()` holds; fail (not hang) when it never does."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@dataclass
class Seen:
    method: str
    path: str
    body_len: int
    sha256: str


@dataclass
class Recording:
    """What the upstream handled; `release` lets requests to /hold finish."""

    seen: list[Seen] = field(default_factory=list)
    entered: list[str] = field(default_factory=list)      # paths, as handlers start
    release: asyncio.Event = field(default_factory=asyncio.Event)
    during: list[object] = field(default_factory=list)    # what a test's probe found


def recording_app(rec: Recording, probe=None) -> web.Application:
    """/echo (any method) reads the body and answers its size and hash; /hold waits
    for `rec.release`; `probe()` (if given) runs once a body is read, before answering."""
    app = web.Application(client_max_size=0)

    async def echo(request: web.Request) -> web.Response:
        rec.entered.append(request.path)
        digest = hashlib.sha256()
        size = 0
        while chunk := await request.content.readany():
            digest.update(chunk)
            size += len(chunk)
        if probe is not None:
            rec.during.append(probe())
        rec.seen.append(Seen(request.method, request.path, size, digest.hexdigest()))
        return web.json_response({"body_len": size, "sha256": digest.hexdigest()})

    async def hold(request: web.Request) -> web.Response:
        rec.entered.append(request.path)
        await rec.release.wait()
        rec.seen.append(Seen(request.method, request.path, 0, ""))
        return web.Response(text="released")

    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_get("/hold", hold)
    return app


@dataclass
class Response:
    status: int
    head: bytes          # status line and headers, without the blank line
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


class RawConnection:
    """One TCP connection to the proxy, driven byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = PATIENCE) -> Response:
        """The next response, read by its Content-Length (all ours and the upstream's
        answers here carry one)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            resp = Response(status, head[:-4], b"")
            length = resp.header("Content-Length")
            if length:
                resp.body = await self.reader.readexactly(int(length))
            return resp

    async def closed(self, timeout: float = PATIENCE) -> bytes:
        """Whatever else arrives until the proxy closes the connection (a reset, after
        bytes the client sent into the closed connection, counts as closed too)."""
        async with asyncio.timeout(timeout):
            try:
                return await self.reader.read()
            except ConnectionError:
                return b""

    def close(self) -> None:
        self.writer.close()


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    return Response(int(head.split(b" ", 2)[1]), head, body)
