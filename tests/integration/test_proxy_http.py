"""The reverse proxy over real sockets: forwarding, headers, bodies, errors (issue: foundation)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from proxy.app import build_app
from proxy.config.load import load_config
from tests.integration.harness import free_port, raw_exchange, stack, start
from tests.integration.upstreams import echo_app


@pytest.fixture
async def s(tmp_path):
    async with stack(echo_app(), tmp=tmp_path, timeout=1) as st:
        yield st


def header_names(echo: dict) -> list[str]:
    return [n.lower() for n, _ in echo["headers"]]


def header(echo: dict, name: str) -> list[str]:
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


async def test_path_and_query_are_forwarded_byte_exact(s) -> None:
    target = "/echo/it%27s/a%2Fb//c;p=1?q=%27x%27&a=1&&b=%2F&sp=a+b&e="
    raw = await raw_exchange(s.proxy_url, (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body["raw_path"] == target


async def test_no_client_library_headers_are_added(s) -> None:
    raw = await raw_exchange(s.proxy_url, (
        b"POST /echo HTTP/1.1\r\nHost: careers.test\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc"))
    echo = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    names = header_names(echo)
    for added in ("accept", "accept-encoding", "user-agent", "content-type"):
        assert added not in names
    assert header(echo, "Host") == [s.upstream_url.removeprefix("http://")]
    assert header(echo, "Content-Length") == ["3"]
    assert echo["body_len"] == 3


async def test_hop_by_hop_removed_before_forwarding_headers_are_added(s) -> None:
    raw = await raw_exchange(s.proxy_url, (
        b"GET /echo HTTP/1.1\r\nHost: careers.test\r\n"
        b"Connection: keep-alive, X-Forwarded-For, X-Secret\r\nX-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nProxy-Authorization: x\r\n"
        b"Upgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n"
        b"X-Kept: yes\r\n\r\n"))
    echo = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    names = header_names(echo)
    for gone in ("x-secret", "keep-alive", "te", "trailer", "proxy-authorization", "upgrade"):
        assert gone not in names
    assert header(echo, "X-Forwarded-For") == ["127.0.0.1"]     # untrusted peer: replaced
    assert header(echo, "X-Forwarded-Host") == ["careers.test"]
    assert header(echo, "X-Forwarded-Proto") == ["http"]
    assert header(echo, "Via") == ["1.1 careers-edge"]
    assert header(echo, "X-Kept") == ["yes"]


async def test_trusted_proxy_forwarding_headers_are_kept(tmp_path) -> None:
    async with stack(echo_app(), tmp=tmp_path,
                     proxy_extra='trusted_proxies = ["127.0.0.0/8"]') as st:
        raw = await raw_exchange(st.proxy_url, (
            b"GET /echo HTTP/1.1\r\nHost: careers.test\r\nX-Forwarded-For: 203.0.113.9\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: careers.acme.example\r\n"
            b"Connection: close\r\n\r\n"))
        echo = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert header(echo, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
        assert header(echo, "X-Forwarded-Proto") == ["https"]
        assert header(echo, "X-Forwarded-Host") == ["careers.acme.example"]


async def test_redirect_headers_and_cookies_rewritten_to_public_origin(s) -> None:
    async with s.session() as c:
        async with c.get("/redirect", allow_redirects=False,
                         headers={"Host": "careers.test"}) as r:
            assert r.status == 302
            assert r.headers["Location"] == "http://careers.test/target?x=1"
            assert r.headers["Content-Location"] == "http://careers.test/here"
            assert r.headers["Refresh"] == "5; url=http://careers.test/later"
            cookies = r.headers.getall("Set-Cookie")
            assert any(c.startswith("sid=abc; Domain=careers.test;") for c in cookies)
            assert any(c.startswith("lang=en") for c in cookies)
            assert any("Domain=elsewhere.example" in c for c in cookies)


async def test_missing_content_type_stays_missing_status_and_reason_pass(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"GET /no-content-type HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"content-type" not in head.lower()
    assert body == b"hello"
    raw = await raw_exchange(s.proxy_url, b"GET /status/299 HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 299 Custom Reason\r\n")


async def test_the_application_serves_the_same_under_a_plain_app_runner(tmp_path) -> None:
    """`careers-edge run` serves with `edge_runner`; embedding the application in a
    `web.AppRunner` goes through its catch-all route and gives the same responses."""
    async with stack(echo_app(), tmp=tmp_path, timeout=1, app_runner=True) as st:
        raw = await raw_exchange(st.proxy_url, b"GET /no-content-type HTTP/1.1\r\nHost: x\r\n"
                                               b"Connection: close\r\n\r\n")
        head, body = raw.split(b"\r\n\r\n", 1)
        assert b"content-type" not in head.lower() and body == b"hello"
        raw = await raw_exchange(st.proxy_url, b"GET /echo/a?b=1 HTTP/1.1\r\nHost: x\r\n"
                                               b"Connection: close\r\n\r\n")
        assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["raw_path"] == "/echo/a?b=1"


@pytest.mark.parametrize("code", [204, 304])
async def test_bodiless_statuses(s, code) -> None:
    raw = await raw_exchange(s.proxy_url, f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n"
                                          "Connection: close\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {code}".encode())
    assert body == b""


async def test_head_has_no_body_but_keeps_length(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"HEAD /big?mb=1&length=1 HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 1048576" in head
    assert body == b""


async def test_conditional_request_passes_through(s) -> None:
    async with s.session() as c:
        async with c.get("/etag", headers={"If-None-Match": '"v1"'}) as r:
            assert r.status == 304


async def test_server_sent_events_flush_as_they_arrive(s) -> None:
    async with s.session() as c:
        loop = asyncio.get_running_loop()
        async with c.get("/sse") as r:
            t0 = loop.time()
            first = await r.content.readuntil(b"\n\n")
            t_first = loop.time() - t0
            rest = await r.read()
        assert first == b"data: tick 0\n\n"
        assert rest.count(b"data: tick") == 2
        # the first event came before the upstream finished its ~0.9 s stream
        assert t_first < 0.6


async def test_websocket_relay(s) -> None:
    async with s.session() as c:
        async with c.ws_connect("/ws", protocols=("chat.v1",)) as ws:
            assert ws.protocol == "chat.v1"
            await ws.send_str("hi")
            assert (await ws.receive()).data == "echo:hi"
            await ws.send_bytes(b"\x01\x02\x03")
            assert (await ws.receive()).data == b"\x03\x02\x01"
            await ws.send_str("bye")
            msg = await ws.receive()
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == 4001


async def test_upstream_refused_is_502_html_or_json(tmp_path) -> None:
    async with stack(echo_app(), tmp=tmp_path,
                     upstream_url=f"http://127.0.0.1:{free_port()}") as st:
        async with st.session() as c:
            async with c.get("/x") as r:
                assert r.status == 502
                assert "text/html" in r.headers["Content-Type"]
                assert "could not be reached" in await r.text()
            async with c.get("/x", headers={"Accept": "application/json"}) as r:
                assert r.status == 502
                assert (await r.json())["status"] == 502


async def test_no_headers_in_time_is_504(s) -> None:
    async with s.session() as c:
        async with c.get("/slow?s=3") as r:
            assert r.status == 504


async def test_body_cut_mid_stream_aborts_client_connection(s) -> None:
    async with s.session() as c:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with c.get("/cut") as r:
                await r.read()


async def test_stale_keepalive_connection_never_502(tmp_path) -> None:
    """The upstream closes idle connections after 50 ms; the pool keeps them 4 s."""
    runner = web.AppRunner(echo_app(), keepalive_timeout=0.05)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with stack(web.Application(), tmp=tmp_path,
                         upstream_url=f"http://127.0.0.1:{port}") as st:
            async with st.session() as c:
                for _ in range(5):
                    async with c.get("/echo") as r:
                        assert r.status == 200
                    await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("request_bytes", [
    b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /echo HTTP/1.1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"GET http://elsewhere.example/echo HTTP/1.1\r\nHost: careers.test\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /echo HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
])
async def test_malformed_requests_are_400_and_never_forwarded(s, request_bytes) -> None:
    raw = await raw_exchange(s.proxy_url, request_bytes)
    assert raw.split(b" ", 2)[1] == b"400", raw[:200]
    assert b'"raw_path"' not in raw


async def test_absolute_form_for_the_same_host_is_served(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"GET http://careers.test/echo?a=1 HTTP/1.1\r\n"
                                          b"Host: careers.test\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["raw_path"] == "/echo?a=1"


async def test_health_and_readiness(s) -> None:
    async with s.session() as c:
        async with c.get("/_edge/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with c.get("/_edge/nope") as r:
            assert r.status == 404
    async with s.admin() as c:
        async with c.get("/_edge/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with c.get("/_edge/readyz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"


async def test_readyz_fails_when_upstream_is_down(tmp_path) -> None:
    async with stack(web.Application(), tmp=tmp_path,
                     upstream_url=f"http://127.0.0.1:{free_port()}") as st:
        async with st.admin() as c:
            async with c.get("/_edge/readyz") as r:
                assert r.status == 503
                assert "upstream" in (await r.json())["problems"][0]


async def test_trace_is_405_with_allow_and_never_forwarded(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"TRACE /echo HTTP/1.1\r\nHost: careers.test\r\n"
                             b"Cookie: sid=secret\r\nConnection: close\r\n\r\n")
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert raw.split(b" ", 2)[1] == b"405", raw[:200]
    assert b"\r\nallow: get, head, post" in head
    assert b'"raw_path"' not in raw and b"secret" not in raw


async def test_track_is_refused_and_never_forwarded(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"TRACK /echo HTTP/1.1\r\nHost: careers.test\r\n"
                             b"Cookie: sid=secret\r\nConnection: close\r\n\r\n")
    assert raw.split(b" ", 2)[1] in (b"400", b"405"), raw[:200]
    assert b'"raw_path"' not in raw and b"secret" not in raw


async def test_an_upstream_pointing_back_at_the_proxy_is_508(tmp_path) -> None:
    port = free_port()
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[proxy]\nupstream = "http://127.0.0.1:{port}"\n'
                     f'state = "sqlite:///{tmp_path / "state.db"}"\ntimeout = 5\n'
                     '[log]\naccess = "off"\n')
    runner, _ = await start(build_app(load_config(rules), dispatch=False), port, proxy=True)
    try:
        raw = await raw_exchange(f"http://127.0.0.1:{port}", (
            b"GET /jobs HTTP/1.1\r\nHost: careers.test\r\nConnection: close\r\n\r\n"))
    finally:
        await runner.cleanup()
    assert raw.split(b" ", 2)[1] == b"508", raw[:300]
    assert b"\r\nVia: 1.1 careers-edge" in raw.split(b"\r\n\r\n", 1)[0]   # one hop back


@pytest.mark.parametrize("via", [b"1.1 careers-edge", b"1.0 lb, 1.1 careers-edge (x)"])
async def test_our_via_entry_in_a_request_is_508_and_not_forwarded(s, via) -> None:
    raw = await raw_exchange(s.proxy_url, b"GET /echo HTTP/1.1\r\nHost: careers.test\r\n"
                             b"Via: " + via + b"\r\nConnection: close\r\n\r\n")
    assert raw.split(b" ", 2)[1] == b"508" and b'"raw_path"' not in raw


async def test_another_proxys_via_is_forwarded(s) -> None:
    raw = await raw_exchange(s.proxy_url, b"GET /echo HTTP/1.1\r\nHost: careers.test\r\n"
                             b"Via: 1.1 careers-edge-lb, 1.1 cdn\r\nConnection: close\r\n\r\n")
    assert raw.split(b" ", 2)[1] == b"200"


async def test_the_proxys_own_cookies_never_reach_the_upstream(s) -> None:
    raw = await raw_exchange(s.proxy_url, (
        b"GET /echo HTTP/1.1\r\nHost: careers.test\r\nConnection: close\r\n"
        b"Cookie: ce_attr=eyJ2.abc; linksClickedId=0123456789abcdef0123; ce_events=x; "
        b"_fbc=fb.1.2.x; ce_fired=e1; ce_preview=9.m; sid=1\r\n\r\n"))
    echo = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert header(echo, "Cookie") == ["linksClickedId=0123456789abcdef0123; _fbc=fb.1.2.x; sid=1"]
