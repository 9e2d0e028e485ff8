"""Malformed and foreign requests against the real proxy: 400 and 505 that echo nothing,
one log line each and no traceback, a Server header without versions, and Hypothesis
over hostile request heads (the proxy answers 4xx or correctly, never 5xx, and keeps
serving)."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.harness import stack, start
from tests.integration.procs import running, write_rules
from tests.integration.upstreams import echo_app
from tests.security.edge_http import RawConnection, Recording, parse_response, recording_app

MARK = b"Zq9Xk"      # in every hostile piece; never in anything the proxy says itself

MALFORMED = [
    b"GET /jobs?x=<script>" + MARK + b" HTTP/1.1\r\nHost: a\r\nBad Header" + MARK + b": 1\r\n\r\n",
    b"GE<T /" + MARK + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st" + MARK + b": a\r\n\r\n",
    b"GET / HTTP/1.2" + MARK + b"\r\nHost: a\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARK,
    b"GET /" + MARK + b"x" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: " + MARK + b"\x00\x01\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2" + MARK
    + b"\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz" + MARK + b"\r\n",
]


def exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection; everything read until the proxy closes."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass                              # closed on us mid-send: read what it said
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionError, TimeoutError):
            pass
    return b"".join(chunks)


async def aexchange(url: str, data: bytes) -> bytes:
    return await asyncio.to_thread(exchange, url, data)


async def test_malformed_requests_get_400_with_nothing_echoed_and_one_log_line(
        tmp_path: Path) -> None:
    rec = Recording()
    runner, port = await start(recording_app(rec))
    try:
        async with running(write_rules(tmp_path, f"http://127.0.0.1:{port}"),
                           tmp=tmp_path) as p:
            for data in MALFORMED:
                raw = await aexchange(p.url, data)
                resp = parse_response(raw)
                assert resp.status == 400, (data, raw[:200])
                assert MARK not in raw and b"bytearray" not in raw
                assert resp.header("X-Content-Type-Options") == "nosniff"
                assert resp.header("Content-Type") == "text/html; charset=utf-8"
                assert resp.header("Server") == "careers-edge"
            count = len(MALFORMED)
            text = await p.wait_log(lambda t: t.count("malformed request from") >= count)
            await asyncio.sleep(0.5)        # a second line for any of them would be here now
            text = p.stderr()
            lines = [line for line in text.splitlines() if "malformed request from" in line]
            assert len(lines) == count
            assert all(" WARNING " in line for line in lines)
            assert "Traceback" not in text and MARK.decode() not in text
            assert rec.entered == []
            metrics = await p.metrics()
            assert f'edge_requests_total{{code="400"}} {count}.0' in metrics
    finally:
        await runner.cleanup()


async def test_a_bad_chunk_after_the_head_ends_the_request_without_an_echo(
        tmp_path: Path) -> None:
    """aiohttp's parser does not fail the body stream of a request already handed over
    when a later chunk is broken: the body stops, and body_timeout answers it."""
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path, proxy_extra="body_timeout = 1") as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
                        b"\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(0.2)
        await conn.send(b"zz" + MARK + b"\r\n")
        resp = await conn.response()
        rest = await conn.closed()
        conn.close()
        assert resp.status in (400, 408) and MARK not in resp.body + rest
        assert rec.seen == []


@pytest.mark.parametrize("line", [b"GET / HTTP/2.0", b"GET /", b"GET / HTTP/0.9"])
async def test_other_http_versions_get_505_in_http11_and_are_never_forwarded(
        tmp_path: Path, line: bytes) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path) as s:
        raw = await aexchange(s.proxy_url, line + b"\r\nHost: careers.test\r\n\r\n")
        resp = parse_response(raw)
        assert raw.startswith(b"HTTP/1.1 505 ")
        assert resp.header("Connection") == "close"
        assert resp.header("Server") == "careers-edge"
        assert rec.entered == []


async def test_a_version_the_parser_refuses_is_400(tmp_path: Path) -> None:
    async with stack(recording_app(Recording()), tmp=tmp_path) as s:
        raw = await aexchange(s.proxy_url, b"GET / HTTP/1.7\r\nHost: careers.test\r\n\r\n")
        assert parse_response(raw).status == 400 and b"1.7" not in raw


async def test_our_own_answers_name_no_versions(tmp_path: Path) -> None:
    async with stack(recording_app(Recording()), tmp=tmp_path,
                     proxy_extra="header_timeout = 1") as s:
        answers = [
            await aexchange(s.proxy_url, b"GET /_edge/healthz HTTP/1.1\r\nHost: a\r\n"
                                         b"Connection: close\r\n\r\n"),
            await aexchange(s.proxy_url, b"GET /_edge/nothing HTTP/1.1\r\nHost: a\r\n"
                                         b"Connection: close\r\n\r\n"),
            await aexchange(s.proxy_url, b"GET http://elsewhere.example/ HTTP/1.1\r\n"
                                         b"Host: a\r\n\r\n"),
            await aexchange(s.proxy_url, b"BAD\x01 / HTTP/1.1\r\n\r\n"),
            await aexchange(s.proxy_url, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            await aexchange(s.proxy_url, b"GET / HTTP/1.1\r\n"),          # then silence: 408
        ]
        codes = [parse_response(raw).status for raw in answers]
        assert codes == [200, 404, 400, 400, 505, 408]
        for raw in answers:
            assert parse_response(raw).header("Server") == "careers-edge", raw[:300]


async def test_json_error_pages_echo_nothing_either(tmp_path: Path) -> None:
    """An error page in JSON (Accept: application/json) says only our words too."""
    async with stack(recording_app(Recording()), tmp=tmp_path) as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(b"GET http://" + MARK + b".example/x HTTP/1.1\r\nHost: careers.test\r\n"
                        b"Accept: application/json\r\n\r\n")
        resp = await conn.response()
        conn.close()
        assert resp.status == 400 and resp.header("Content-Type") == "application/json"
        assert MARK not in resp.body and resp.header("X-Content-Type-Options") == "nosniff"


# --- Hypothesis over request heads, against one proxy kept running ------------------

@pytest.fixture(scope="module")
def edge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One proxy (and echo upstream) on a loop of its own, for blocking raw sockets."""
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        async with stack(echo_app(), tmp=tmp_path_factory.mktemp("edge"),
                         proxy_extra="header_timeout = 5") as s:
            box["url"] = s.proxy_url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the proxy did not start"
    yield str(box["url"])
    box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
    thread.join(30)


def hostile(alphabet: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Bytes around the marker, so an echo of any piece is found."""
    return st.tuples(alphabet, alphabet).map(lambda t: t[0] + MARK + t[1])


ANY_BYTES = st.binary(max_size=40)
SPECIALS = st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"\t", b"<script>",
                            b"\r\nX-Injected: 1", b"%0d%0a", b"\xff\xfe", b"HTTP/1.1"])
PIECE = hostile(st.lists(st.one_of(ANY_BYTES, SPECIALS), max_size=4).map(b"".join))
METHOD = st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS", b"DELETE"]), PIECE)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2",
                            b"HTTP/1.1 extra", b"http/1.1", b""])
HEADER = st.tuples(st.one_of(st.just(b"X-Test"), PIECE), st.one_of(st.just(b"ok"), PIECE))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=METHOD, target=PIECE, version=VERSIONS, headers=st.lists(HEADER, max_size=4),
       host=st.booleans())
def test_hostile_heads_get_4xx_or_an_answer_never_5xx_nor_an_echo(
        edge_url: str, method: bytes, target: bytes, version: bytes,
        headers: list[tuple[bytes, bytes]], host: bool) -> None:
    head = method + b" /" + target + (b" " + version if version else b"") + b"\r\n"
    if host:
        head += b"Host: careers.test\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    raw = exchange(edge_url, head + b"Connection: close\r\n\r\n")
    assert raw.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), raw[:200]
    resp = parse_response(raw)
    # 505 answers a request line (up to its first CR or LF) that names no HTTP/1.x.
    line = re.split(rb"[\r\n]", head, maxsplit=1)[0]
    speaks_1x = line.endswith((b" HTTP/1.1", b" HTTP/1.0"))
    assert resp.status < 500 or (resp.status == 505 and not speaks_1x), raw[:300]
    if resp.header("Server") == "careers-edge":       # our own answer
        assert MARK not in raw
    assert b"\r\nx-injected:" not in resp.head.lower()
    ok = exchange(edge_url, b"GET /echo HTTP/1.1\r\nHost: careers.test\r\n"
                            b"Connection: close\r\n\r\n")
    assert parse_response(ok).status == 200            # still serving
