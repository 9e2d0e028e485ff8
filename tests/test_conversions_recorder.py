"""A local HTTP server standing in for the ad networks, used by the conversion tests.

`Recorder.start(aiohttp_server)` serves any path; each request is recorded and
answered from the path's script (status, headers, body; optional delay), then 200.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, MultiDict


@dataclass
class Recorded:
    method: str
    path: str
    raw_path: str             # path and query exactly as sent
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes
    at: float                 # time.time() on arrival


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[str, list[Reply]] = {}
        self._changed = asyncio.Condition()
        self.server = None

    @classmethod
    async def start(cls, aiohttp_server) -> Recorder:
        rec = cls()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", rec._handle)
        rec.server = await aiohttp_server(app)
        return rec

    def url(self, path: str) -> str:
        """`path` kept byte-exact (yarl would re-quote it)."""
        return f"http://{self.server.host}:{self.server.port}{path}"

    def script(self, path: str, *replies: Reply | int) -> None:
        self.scripts.setdefault(path, []).extend(
            r if isinstance(r, Reply) else Reply(status=r) for r in replies)

    def on(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, n: int, path: str | None = None, timeout: float = 20.0) -> None:
        """Until n requests (to `path`) arrived; the timeout only stops a hung test."""
        def enough() -> bool:
            return len(self.on(path) if path else self.requests) >= n
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(enough), timeout)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, request.raw_path,
                                      MultiDict(request.query), CIMultiDict(request.headers),
                                      body, time.time()))
        async with self._changed:
            self._changed.notify_all()
        queue = self.scripts.get(request.path) or []
        reply = queue.pop(0) if queue else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


async def test_recorder_serves_its_script_in_order_then_200(aiohttp_server, aiohttp_client):
    import aiohttp
    from yarl import URL

    rec = await Recorder.start(aiohttp_server)
    rec.script("/x", Reply(503, b"down", {"Retry-After": "7"}), 404)
    async with aiohttp.ClientSession() as s:
        got = []
        for _ in range(3):
            async with s.post(URL(rec.url("/x?a=%2F"), encoded=True), data=b"hi") as r:
                got.append((r.status, await r.read(), r.headers.get("Retry-After")))
    assert got == [(503, b"down", "7"), (404, b"ok", None), (200, b"ok", None)]
    assert rec.requests[0].raw_path == "/x?a=%2F" and rec.requests[0].body == b"hi"
    await rec.wait_for(3, "/x")
