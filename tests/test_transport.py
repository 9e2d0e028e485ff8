"""The upstream transport against real sockets: aiohttp test servers and raw TCP upstreams."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise
from typing import Self

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.http.request_head import encode_head, parse_origin
from proxy.http.transport import (
    RequestBodyError,
    UpstreamBodyError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from tests.conftest import need_binary

MB = 1024 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- helpers -----------------------------------------------------------------------------

class RawUpstream:
    """A TCP upstream that runs `handler` per connection and keeps what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(r, w)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()
        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def origin(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def read_head(r: asyncio.StreamReader) -> bytes:
    return await r.readuntil(b"\r\n\r\n")


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., UpstreamPool]]:
    made: list[UpstreamPool] = []

    def make(origin: str, **kw: object) -> UpstreamPool:
        made.append(UpstreamPool(origin, **kw))  # type: ignore[arg-type]
        return made[-1]
    yield make
    for p in made:
        await p.close()


def peer_app() -> web.Application:
    """Answers with the client's source port, so tests can tell connections apart."""
    async def peer(request: web.Request) -> web.Response:
        return web.Response(text=str(request.transport.get_extra_info("peername")[1]))
    app = web.Application()
    app.router.add_get("/peer", peer)
    return app


async def get_text(pool: UpstreamPool, target: bytes = b"/peer", **kw: object) -> str:
    resp = await pool.request("GET", target, [], **kw)  # type: ignore[arg-type]
    try:
        return (await resp.read()).decode()
    finally:
        resp.release()


# -- the request head: pure -----------------------------------------------------------------

def test_origin_host_header() -> None:
    assert parse_origin("https://acme.example").host_header == b"acme.example"
    assert parse_origin("http://127.0.0.1:9000").host_header == b"127.0.0.1:9000"
    assert parse_origin("http://[::1]:8080").host_header == b"[::1]:8080"
    assert parse_origin("https://a.example:443/").port == 443
    for bad in ("ftp://a", "https://", "https://a.example/path"):
        with pytest.raises(ValueError):
            parse_origin(bad)


def test_head_keeps_callers_headers_and_owns_framing() -> None:
    head = encode_head(b"POST", b"/a%27b?q=%2F", b"up.example",
                       [(b"X-A", b"1"), (b"host", b"evil"), (b"Content-Length", b"9"),
                        (b"Set-Thing", b"a"), (b"Set-Thing", b"b")],
                       b"Content-Length: 3\r\n")
    assert head == (b"POST /a%27b?q=%2F HTTP/1.1\r\nHost: up.example\r\nX-A: 1\r\n"
                    b"Set-Thing: a\r\nSet-Thing: b\r\nContent-Length: 3\r\n\r\n")


def reference_head(method: bytes, target: bytes, host: bytes,
                   headers: list[tuple[bytes, bytes]], framing: bytes) -> bytes | None:
    """The head line by line (None: refused), what `encode_head` must agree with."""
    kept = [(n, v) for n, v in headers
            if n.lower() not in (b"host", b"content-length", b"transfer-encoding")]
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + host,
             *(n + b": " + v for n, v in kept)]
    if b" " in target or any(b"\r" in line or b"\n" in line for line in lines) \
            or b"\r" in framing[:-2] or b"\n" in framing[:-2]:
        return None
    return b"".join(line + b"\r\n" for line in lines) + framing + b"\r\n"


HEAD_BYTES = st.sampled_from([b"a", b"1", b" ", b":", b"\r", b"\n", b"Host", b"host:",
                              b"Content-Length", b"transfer-encoding", b"\nHost: x"])
HEAD_TEXT = st.lists(HEAD_BYTES, max_size=4).map(b"".join)


@given(st.lists(st.tuples(st.sampled_from([b"X-A", b"Host", b"HOST", b"content-length",
                                           b"Transfer-Encoding", b"Via", b"Hostile"]),
                          HEAD_TEXT), max_size=5),
       st.sampled_from([b"", b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n"]),
       st.sampled_from([b"/", b"/a b", b"/a\r\n"]))
def test_head_agrees_with_the_lines_one_by_one(headers: list[tuple[bytes, bytes]],
                                               framing: bytes, target: bytes) -> None:
    expected = reference_head(b"GET", target, b"up.example", headers, framing)
    if expected is None:
        with pytest.raises(ValueError):
            encode_head(b"GET", target, b"up.example", headers, framing)
    else:
        assert encode_head(b"GET", target, b"up.example", headers, framing) == expected


@pytest.mark.parametrize("target,headers", [
    (b"/a\r\nX: 1", []), (b"/a b", []), (b"/", [(b"X", b"1\r\nEvil: 1")]),
    (b"/", [(b"X", b"1\nEvil: 1")]), (b"/", [(b"X\r", b"1")]),
])
def test_head_refuses_line_breaks(target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ValueError):
        encode_head(b"GET", target, b"h", headers, b"")


# -- what goes on the wire ------------------------------------------------------------------

async def test_wire_bytes_are_exact(pools: Callable[..., UpstreamPool]) -> None:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(r)
            body = b""
            if b"Content-Length: " in head:
                n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = await r.readexactly(n)
            elif b"chunked" in head:
                body = await r.readuntil(b"0\r\n\r\n")
            seen.append(head + body)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    async def stream() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b""            # an empty piece must not end a chunked body
        yield b"cde"

    async with RawUpstream(handler) as up:
        pool = pools(up.origin)
        host = pool.host_header
        hdrs = [(b"X-Forwarded-For", b"1.2.3.4"), (b"cookie", b"a=1")]
        for method, body, length in [("GET", None, None), ("POST", b"xyz", None),
                                     ("PUT", stream(), None), ("POST", stream(), 5),
                                     ("POST", None, None)]:
            (await pool.request(method, b"/p%27?x=%20y", hdrs, body, body_length=length)).release()
        assert up.connections == 1
    start = b" /p%27?x=%20y HTTP/1.1\r\nHost: " + host + b"\r\nX-Forwarded-For: 1.2.3.4\r\ncookie: a=1\r\n"
    assert seen == [
        b"GET" + start + b"\r\n",
        b"POST" + start + b"Content-Length: 3\r\n\r\nxyz",
        b"PUT" + start + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
        b"POST" + start + b"Content-Length: 5\r\n\r\nabcde",
        b"POST" + start + b"Content-Length: 0\r\n\r\n",
    ]


async def test_stream_shorter_than_length_is_refused(pools: Callable[..., UpstreamPool],
                                                     aiohttp_server) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b"abc"
    server = await aiohttp_server(peer_app())
    pool = pools(str(server.make_url("")))
    with pytest.raises(RequestBodyError):
        await pool.request("POST", b"/peer", [], stream(), body_length=10)
    with pytest.raises(RequestBodyError):
        await pool.request("POST", b"/peer", [], stream(), body_length=2)
    assert (await get_text(pool)).isdigit()


async def test_response_head_is_raw(pools: Callable[..., UpstreamPool]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 Okey Dokey\r\nSet-Cookie: a=1\r\nX-Y: 1\r\n"
                b"set-cookie: b=2; Domain=up.example\r\nContent-Length: 2\r\n\r\nhi")
        await r.read()
    async with RawUpstream(handler) as up:
        resp = await pools(up.origin).request("GET", b"/", [])
        assert (resp.status, resp.reason, resp.version) == (200, b"Okey Dokey", (1, 1))
        assert resp.headers == [(b"Set-Cookie", b"a=1"), (b"X-Y", b"1"),
                                (b"set-cookie", b"b=2; Domain=up.example"),
                                (b"Content-Length", b"2")]
        assert (resp.content_length, resp.chunked, resp.has_body()) == (2, False, True)
        assert await resp.read() == b"hi"
        resp.release()


# -- keep-alive pool ------------------------------------------------------------------------

async def test_reuses_warmest_connection(pools: Callable[..., UpstreamPool],
                                         aiohttp_server) -> None:
    first_read = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await first_read.wait()
        return web.Response(text=str(request.transport.get_extra_info("peername")[1]))
    app = peer_app()
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    pool = pools(str(server.make_url("")))

    async def fast_then_release() -> str:
        text = await get_text(pool)
        first_read.set()
        return text
    fast, slow_port = await asyncio.gather(fast_then_release(), get_text(pool, b"/slow"))
    assert fast != slow_port
    assert await get_text(pool) == slow_port          # LIFO: released last, reused first
    assert pool.stats["open"] == 2


async def test_idle_connections_expire(pools: Callable[..., UpstreamPool],
                                       aiohttp_server) -> None:
    server = await aiohttp_server(peer_app())
    pool = pools(str(server.make_url("")), idle_timeout=0.05)
    first = await get_text(pool)
    assert pool.stats == {"open": 1, "idle": 1, "waiting": 0}
    await asyncio.sleep(0.3)
    assert pool.stats["open"] == 0                    # the sweep closed it
    assert await get_text(pool) != first


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
])
async def test_upstream_close_is_honoured(pools: Callable[..., UpstreamPool],
                                          response: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await read_head(r)
            w.write(response)
            await w.drain()
    async with RawUpstream(handler) as up:
        pool = pools(up.origin)
        for _ in range(3):
            assert await get_text(pool, b"/") == "ok"
        assert up.connections == 3


async def test_max_connections_queues_waiters(pools: Callable[..., UpstreamPool]) -> None:
    live = peak = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        try:
            while True:
                await read_head(r)
                await asyncio.sleep(0.01)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            live -= 1
    async with RawUpstream(handler) as up:
        pool = pools(up.origin, max_connections=2)
        assert await asyncio.gather(*(get_text(pool, b"/") for _ in range(12))) == ["ok"] * 12
        assert peak == 2 and up.connections == 2


async def test_unread_body_closes_connection(pools: Callable[..., UpstreamPool],
                                             aiohttp_server) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (4 * MB))
    app = peer_app()
    app.router.add_get("/big", big)
    server = await aiohttp_server(app)
    pool = pools(str(server.make_url("")))
    first = await get_text(pool)
    resp = await pool.request("GET", b"/big", [])
    assert await resp.read_chunk()
    resp.release()
    await asyncio.sleep(0)
    assert pool.stats["open"] == 0
    assert await get_text(pool) != first


async def test_cancelled_request_frees_its_connection(pools: Callable[..., UpstreamPool]) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()
    async with RawUpstream(silent) as up:
        pool = pools(up.origin, max_connections=1)
        task = asyncio.create_task(pool.request("GET", b"/", []))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert pool.stats == {"open": 0, "idle": 0, "waiting": 0}


async def test_cancelled_waiter_leaves_no_trace(pools: Callable[..., UpstreamPool]) -> None:
    release = asyncio.Event()

    async def held(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await read_head(r)
            await release.wait()
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    async with RawUpstream(held) as up:
        pool = pools(up.origin, max_connections=1)
        first = asyncio.create_task(get_text(pool, b"/"))
        queued = asyncio.create_task(get_text(pool, b"/"))
        await asyncio.sleep(0.05)
        assert pool.stats == {"open": 1, "idle": 0, "waiting": 1}
        queued.cancel()
        release.set()
        assert await first == "ok"
        assert await get_text(pool, b"/") == "ok"
        assert pool.stats == {"open": 1, "idle": 1, "waiting": 0}
        assert up.connections == 1


# -- stale connections ---------------------------------------------------------------------

async def test_upstream_closing_after_each_response_never_errors(
        pools: Callable[..., UpstreamPool]) -> None:
    async def one_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")   # says keep-alive
        await w.drain()
    async with RawUpstream(one_then_close) as up:
        pool = pools(up.origin)
        for _ in range(20):
            assert await get_text(pool, b"/") == "ok"


async def test_stale_connection_race_retries_idempotent_only(
        pools: Callable[..., UpstreamPool]) -> None:
    """The upstream drops the connection as the second request arrives (the real race)."""
    async def drop_second(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await read_head(r)                     # then close without answering
    async with RawUpstream(drop_second) as up:
        pool = pools(up.origin)
        assert await get_text(pool, b"/") == "ok"
        assert await get_text(pool, b"/") == "ok"            # retried on a new connection
        assert up.connections == 2
        with pytest.raises(UpstreamProtocolError):             # POST: never resent
            await pool.request("POST", b"/", [], b"a=1")
        assert up.connections == 2


# -- failures ------------------------------------------------------------------------------

async def test_connect_errors(pools: Callable[..., UpstreamPool]) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(UpstreamConnectError):
        await pools(f"http://127.0.0.1:{port}").request("GET", b"/", [])
    with pytest.raises(UpstreamConnectError):
        await pools("http://no-such-host.invalid").request("GET", b"/", [])


async def test_header_timeout(pools: Callable[..., UpstreamPool]) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()
    async with RawUpstream(silent) as up:
        pool = pools(up.origin)
        with pytest.raises(UpstreamTimeout):
            await pool.request("GET", b"/", [], header_timeout=0.1)
        await asyncio.sleep(0)
        assert pool.stats["open"] == 0


@pytest.mark.parametrize("first_timeout", [30.0, 0.15])
async def test_header_timeout_on_a_reused_connection(pools: Callable[..., UpstreamPool],
                                                     first_timeout: float) -> None:
    """The per-connection deadline timer re-arms for a shorter, and a later, deadline."""
    async def answer_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await r.read()
    async with RawUpstream(answer_once) as up:
        pool = pools(up.origin)
        assert await get_text(pool, b"/", header_timeout=first_timeout) == "ok"
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamTimeout):
            await pool.request("GET", b"/", [], header_timeout=0.15)
        assert up.connections == 1


@pytest.mark.parametrize("reply,error", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", UpstreamProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Le", UpstreamProtocolError),       # closed before headers
    (b"", UpstreamProtocolError),
])
async def test_garbage_or_early_close(pools: Callable[..., UpstreamPool], reply: bytes,
                                      error: type[Exception]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(reply)
    async with RawUpstream(handler) as up:
        with pytest.raises(error):
            await pools(up.origin).request("GET", b"/", [])


@pytest.mark.parametrize("reply,delivered", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", b"12345"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n", b"12345"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\nzz\r\n", b"12345"),
])
async def test_body_cut_short(pools: Callable[..., UpstreamPool], reply: bytes,
                              delivered: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(reply)
    async with RawUpstream(handler) as up:
        resp = await pools(up.origin).request("GET", b"/", [])
        got = b""
        with pytest.raises(UpstreamBodyError):
            async for piece in resp:
                got += piece
        assert got == delivered


# -- responses without a body, interim responses, read-until-close -------------------------

async def test_bodiless_responses_keep_the_connection(pools: Callable[..., UpstreamPool]) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",                   # to HEAD
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n",
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for reply in replies:
            await read_head(r)
            w.write(reply)
        await r.read()
    async with RawUpstream(handler) as up:
        pool = pools(up.origin)
        results = []
        for method in ("HEAD", "GET", "GET", "GET", "GET"):
            resp = await pool.request(method, b"/", [])
            results.append((resp.status, resp.has_body(), await resp.read()))
            resp.release()
        assert results == [(200, False, b""), (204, False, b""), (304, False, b""),
                           (200, True, b"ok"), (200, True, b"ok")]
        assert up.connections == 1


async def test_read_until_close_flows_as_it_arrives(pools: Callable[..., UpstreamPool]) -> None:
    go_on = asyncio.Event()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")
        await go_on.wait()                  # only after the client saw the first event
        w.write(b"data: 2\n\n")
    async with RawUpstream(handler) as up:
        resp = await pools(up.origin).request("GET", b"/", [])
        assert (resp.content_length, resp.chunked) == (None, False)
        assert await resp.read_chunk() == b"data: 1\n\n"
        go_on.set()
        assert await resp.read() == b"data: 2\n\n"  # EOF ends it normally


async def test_server_sent_events_chunk_by_chunk(pools: Callable[..., UpstreamPool],
                                                 aiohttp_server) -> None:
    go_on = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: first\n\n")
        await go_on.wait()
        await resp.write(b"data: second\n\n")
        await resp.write_eof()
        return resp
    app = web.Application()
    app.router.add_get("/events", events)
    server = await aiohttp_server(app)
    resp = await pools(str(server.make_url(""))).request("GET", b"/events", [])
    assert resp.chunked
    assert await resp.read_chunk() == b"data: first\n\n"
    go_on.set()
    assert await resp.read() == b"data: second\n\n"
    resp.release()


# -- 100 MB both ways, bounded memory --------------------------------------------------------

STREAM_TOTAL = 100 * MB
PIECE = b"\xab" * (64 * 1024)


@pytest.mark.slow
async def test_100mb_download_and_upload_with_bounded_memory(
        pools: Callable[..., UpstreamPool], aiohttp_server) -> None:
    async def download(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = STREAM_TOTAL
        await resp.prepare(request)
        for _ in range(STREAM_TOTAL // len(PIECE)):
            await resp.write(PIECE)
        return resp

    async def upload(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)        # a lagging upstream: the client must wait, not buffer
        total = 0
        async for data in request.content.iter_any():
            total += len(data)
        return web.Response(text=str(total))

    async def body() -> AsyncIterator[bytes]:
        for _ in range(STREAM_TOTAL // len(PIECE)):
            yield PIECE

    app = web.Application()
    app.router.add_get("/download", download)
    app.router.add_post("/upload", upload)
    server = await aiohttp_server(app)
    pool = pools(str(server.make_url("")))
    (await pool.request("GET", b"/upload", [])).release()     # warm up: 405, ignored
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        resp = await pool.request("GET", b"/download", [])
        await asyncio.sleep(0.5)        # a lagging client: the upstream must be paused
        total = 0
        async for data in resp:
            total += len(data)
        resp.release()
        assert total == STREAM_TOTAL
        resp = await pool.request("POST", b"/upload", [], body())     # chunked
        assert await resp.read() == str(STREAM_TOTAL).encode()
        resp.release()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 30 * MB, f"{(peak - base) / MB:.1f} MB held while streaming"


# -- https upstream ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    need_binary("openssl")      # makes the self-signed certificate
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


async def test_https_upstream_with_sni(pools: Callable[..., UpstreamPool], aiohttp_server,
                                       self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["Host"])
    app = web.Application()
    app.router.add_get("/host", host)
    server = await aiohttp_server(app, host="localhost", ssl=server_ctx)
    origin = f"https://localhost:{server.port}"

    client_ctx = ssl.create_default_context(cafile=cert)
    pool = pools(origin, ssl_context=client_ctx)
    assert await get_text(pool, b"/host") == f"localhost:{server.port}"
    assert await get_text(pool, b"/host") == f"localhost:{server.port}"
    assert sni == ["localhost"]                       # one handshake, SNI = the host
    with pytest.raises(UpstreamConnectError):         # the default context rejects it
        await pools(origin).request("GET", b"/host", [])


# -- protocol upgrade ----------------------------------------------------------------------------

@pytest.mark.parametrize("as_streams", [False, True])
async def test_websocket_upgrade_detaches_raw_connection(pools: Callable[..., UpstreamPool],
                                                         aiohttp_server, as_streams: bool) -> None:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")            # may arrive in the same read as the 101
        async for msg in ws:
            await ws.send_str("echo:" + msg.data)
        return ws
    app = web.Application()
    app.router.add_get("/ws", echo)
    server = await aiohttp_server(app)
    pool = pools(str(server.make_url("")))
    resp = await pool.request("GET", b"/ws", [
        (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"Sec-WebSocket-Version", b"13")])
    assert resp.status == 101 and not resp.has_body()
    if as_streams:
        reader, writer = resp.detach_streams()
        transport = writer.transport
    else:
        reader, transport = await resp.detach()  # type: ignore[assignment]
    assert pool.stats["open"] == 0                    # no longer the pool's
    assert await reader.readexactly(7) == b"\x81\x05hello"
    mask = b"\x01\x02\x03\x04"
    transport.write(b"\x81\x82" + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(b"hi")))
    if as_streams:
        await writer.drain()
    assert await reader.readexactly(9) == b"\x81\x07echo:hi"
    transport.close()


# -- arbitrary chunk boundaries and hostile upstreams --------------------------------------------

def serve_pieces(pieces: list[bytes]) -> Handler:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_head(r)
        for piece in pieces:
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0)
    return handler


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


bodies = st.lists(st.binary(min_size=1, max_size=300), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=bodies, cuts=st.lists(st.integers(min_value=0), max_size=12),
       chunked=st.booleans(), close_delimited=st.booleans())
def test_any_split_of_a_response_parses_the_same(parts: list[bytes], cuts: list[int],
                                                 chunked: bool, close_delimited: bool) -> None:
    body = b"".join(parts)
    if chunked:
        framed = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        head = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nTransfer-Encoding: chunked\r\n\r\n"
    elif close_delimited:
        framed, head = body, b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n\r\n"
    else:
        framed = body
        head = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def scenario() -> None:
        async with RawUpstream(serve_pieces(split(head + framed, cuts))) as up:
            pool = UpstreamPool(up.origin)
            try:
                resp = await pool.request("GET", b"/", [])
                assert resp.headers[0] == (b"Set-Cookie", b"a=1")
                assert await resp.read() == body
            finally:
                await pool.close()
    run(scenario())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda tail: b"HTTP/1.1 200 OK\r\n" + tail, st.binary(max_size=200)),
    st.builds(lambda n, tail: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + tail,
              st.integers(min_value=-5, max_value=500), st.binary(max_size=200)),
    st.builds(lambda tail: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + tail,
              st.binary(max_size=200))))
def test_hostile_upstream_only_raises_upstream_errors(garbage: bytes) -> None:
    async def scenario() -> None:
        async with RawUpstream(serve_pieces([garbage])) as up:
            pool = UpstreamPool(up.origin)
            try:
                resp = await pool.request("GET", b"/", [], header_timeout=5)
                await resp.read()
            except UpstreamError:
                pass
            finally:
                await pool.close()
    run(scenario())
