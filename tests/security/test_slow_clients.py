"""Slow clients against the real proxy over raw sockets: heads, bodies, idle connections,
and a full upstream pool. Short timeouts in the rules file; the tests only ever wait
for what the proxy must do (a 408, a close, a 503), never measure how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiohttp
import pytest

from proxy.http.head_deadline import HeadDeadline
from tests.integration.harness import Stack, stack
from tests.security.edge_http import (
    PATIENCE,
    RawConnection,
    Recording,
    eventually,
    recording_app,
)

GET_ECHO = b"GET /echo HTTP/1.1\r\nHost: careers.test\r\n\r\n"


def metric(s: Stack, name: str, **labels: str) -> float | None:
    return s.edge.metrics.registry.get_sample_value(name, labels)


async def dribble(conn: RawConnection, data: bytes, pause: float = 0.2) -> None:
    """Send `data` a byte at a time until it is out or the proxy hung up."""
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            await conn.send(data[i:i + 1])
            await asyncio.sleep(pause)


async def served(url: str, path: str = "/echo") -> int:
    async with aiohttp.ClientSession() as session, session.get(
            url + path, timeout=aiohttp.ClientTimeout(total=PATIENCE)) as r:
        await r.read()
        return r.status


async def test_a_head_sent_a_byte_at_a_time_gets_408_while_others_are_served(
        tmp_path: Path) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra="header_timeout = 1") as s:
        slow = await RawConnection.open(s.proxy_url)
        head = b"GET /echo HTTP/1.1\r\nHost: careers.test\r\nX-Slow: " + b"a" * 500 + b"\r\n\r\n"
        sender = asyncio.create_task(dribble(slow, head))
        # Visitors are served while the slow head trickles in.
        assert [await served(s.proxy_url) for _ in range(3)] == [200, 200, 200]
        resp = await slow.response()
        assert resp.status == 408
        assert resp.header("Connection") == "close"
        assert resp.header("Server") == "careers-edge"
        assert await slow.closed() == b""
        await sender
        slow.close()
        assert rec.entered == ["/echo"] * 3          # the slow one never reached upstream
        assert await served(s.proxy_url) == 200


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed(tmp_path: Path) -> None:
    async with stack(recording_app(Recording()), tmp=tmp_path,
                     proxy_extra="header_timeout = 1") as s:
        silent = await RawConnection.open(s.proxy_url)
        resp = await silent.response()
        assert resp.status == 408 and b"did not arrive in time" in resp.body
        assert await silent.closed() == b""
        silent.close()
        assert metric(s, "edge_requests_total", code="408") == 1


async def test_a_pipelined_head_left_unfinished_gets_408_after_the_first_answer(
        tmp_path: Path) -> None:
    async with stack(recording_app(Recording()), tmp=tmp_path,
                     proxy_extra="header_timeout = 1") as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(GET_ECHO + b"GET /echo HTTP/1.1\r\nHo")
        assert (await conn.response()).status == 200
        sender = asyncio.create_task(dribble(conn, b"st: careers.test\r\nX-Slow: 1" * 20))
        assert (await conn.response()).status == 408
        await sender
        assert await conn.closed() == b""
        conn.close()


async def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(
        tmp_path: Path) -> None:
    async with stack(recording_app(Recording()), tmp=tmp_path,
                     proxy_extra="keepalive_timeout = 1\nheader_timeout = 60") as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(GET_ECHO)
        assert (await conn.response()).status == 200
        # Idle between requests is keep-alive's business: a close, no 408.
        assert await conn.closed() == b""
        conn.close()


@pytest.mark.parametrize("buffering", ["true", "false"])
async def test_a_slow_body_times_out_with_408_and_is_never_forwarded(
        tmp_path: Path, buffering: str) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra=f"body_timeout = 1\nrequest_buffering = {buffering}") as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: careers.test\r\n"
                        b"Content-Length: 10\r\n\r\n12345")
        resp = await conn.response()
        assert resp.status == 408
        assert await conn.closed() == b""
        conn.close()
        assert rec.seen == []           # no upstream handler ever had the whole body
        assert await served(s.proxy_url) == 200


async def test_a_slow_body_does_not_hold_the_only_upstream_connection(tmp_path: Path) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra="max_connections = 1\npool_timeout = 30\n"
                                 "request_buffering = true") as s:
        uploader = await RawConnection.open(s.proxy_url)
        await uploader.send(b"POST /echo/upload HTTP/1.1\r\nHost: careers.test\r\n"
                            b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        # 100 Continue: the proxy reads the body now (streaming, it would hold the one
        # upstream connection from here on).
        assert (await uploader.response()).status == 100
        await uploader.send(b"12345")
        assert await served(s.proxy_url) == 200
        await uploader.send(b"67890")
        resp = await uploader.response()
        assert resp.status == 200 and json.loads(resp.body)["body_len"] == 10
        uploader.close()
        # The other visitor reached the upstream first: the upload came in one piece after.
        assert rec.entered == ["/echo", "/echo/upload"]


async def test_a_streamed_slow_body_holds_the_connection_and_others_get_503(
        tmp_path: Path) -> None:
    """With request_buffering = false the slow body holds the only connection; the
    next visitor waits pool_timeout and gets 503, not an endless wait."""
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra="max_connections = 1\npool_timeout = 1\n"
                                 "request_buffering = false") as s:
        uploader = await RawConnection.open(s.proxy_url)
        await uploader.send(b"POST /echo/upload HTTP/1.1\r\nHost: careers.test\r\n"
                            b"Content-Length: 10\r\n\r\n12345")
        await eventually(lambda: rec.entered == ["/echo/upload"])   # upstream has it
        assert await served(s.proxy_url) == 503
        await uploader.send(b"67890")
        assert (await uploader.response()).status == 200
        uploader.close()


async def test_a_full_pool_answers_503_after_pool_timeout(tmp_path: Path) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra="max_connections = 1\npool_timeout = 1") as s:
        holder = asyncio.create_task(served(s.proxy_url, "/hold"))
        await eventually(lambda: rec.entered == ["/hold"])
        async with aiohttp.ClientSession() as session:
            async with session.get(s.proxy_url + "/echo",
                                   timeout=aiohttp.ClientTimeout(total=PATIENCE)) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert "busy" in await r.text()
            async with session.get(s.proxy_url + "/echo", headers={"Accept": "application/json"},
                                   timeout=aiohttp.ClientTimeout(total=PATIENCE)) as r:
                assert r.status == 503 and (await r.json())["status"] == 503
        rec.release.set()
        assert await holder == 200
        assert await served(s.proxy_url) == 200
        assert metric(s, "edge_upstream_errors_total", kind="pool_timeout") == 2
        assert s.edge.transport.stats["waiting"] == 0


# --- HeadDeadline on its own, around a protocol of the test's --------------------------

class Heads(asyncio.Protocol):
    """A stand-in for aiohttp's protocol: a blank line ends a head; answers "ok"."""

    def __init__(self) -> None:
        self.deadline: HeadDeadline | None = None
        self.transport: asyncio.Transport | None = None
        self.data = b""
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.data.endswith(b"\n\n"):
            assert self.deadline is not None and self.transport is not None
            self.deadline.head_complete(Ended())
            self.transport.write(b"ok\n")
            self.deadline.request_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


class Ended:
    def is_eof(self) -> bool:
        return True


async def serve_heads(timeout: float) -> tuple[asyncio.Server, list[Heads]]:
    loop = asyncio.get_running_loop()
    inners: list[Heads] = []

    def factory() -> HeadDeadline:
        inner = Heads()
        inner.deadline = HeadDeadline(inner, loop, timeout)
        inners.append(inner)
        return inner.deadline

    return await loop.create_server(factory, "127.0.0.1", 0), inners


async def test_head_deadline_passes_bytes_through_and_answers_408_when_it_passes() -> None:
    server, inners = await serve_heads(0.5)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await RawConnection.open(f"http://127.0.0.1:{port}")
        await conn.send(b"one\n\n")
        assert await conn.reader.readline() == b"ok\n"
        await conn.send(b"tw")                   # a next head begun, never finished
        resp = await conn.response()
        assert resp.status == 408 and resp.header("Content-Length") == str(len(resp.body))
        assert await conn.closed() == b""
        conn.close()
        await inners[0].lost.wait()              # the wrapped protocol heard of the close
        assert inners[0].data == b"one\n\ntw"
    finally:
        server.close()
