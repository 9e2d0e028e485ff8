"""Bounded memory: a 100 MB HTML page and a 100 MB résumé upload pass through the proxy
process, and its peak resident size (VmHWM) grows by far less than either."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.demo.site import serve
from tests.integration.procs import ProxyProcess, apply_rule, running, write_rules

SIZE = 100 * 1024 * 1024
CHUNK = 64 * 1024
MAX_GROWTH = 40 * 1024 * 1024
BOUNDARY = "edge-memory-boundary"
HEAD = b"<!doctype html><html><head><title>big</title></head><body>\n"
FILLER = (b"<p>" + b"x" * (CHUNK - 8) + b"</p>\n")[:CHUNK]
RULES = """
max_body = "200MB"    # [proxy]: the 100 MiB résumé comes with its multipart framing
[pixels.marker]
type = "html"
paths = ["/**"]
html = '<meta name="edge-marker" content="big">'
""" + apply_rule()


def big_app() -> web.Application:
    async def page(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
        await resp.prepare(request)
        await resp.write(HEAD)
        for _ in range(SIZE // CHUNK):
            await resp.write(FILLER)
        await resp.write(b"</body></html>\n")
        return resp

    async def apply(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        while chunk := await request.content.readany():
            digest.update(chunk)
            size += len(chunk)
        return web.Response(status=303, headers={
            "Location": f"/jobs/{request.match_info['job_id']}/thanks",
            "X-Received": str(size), "X-Digest": digest.hexdigest()})

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=HEAD + b"</body></html>\n", content_type="text/html")

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/big", page)
    app.router.add_post("/jobs/{job_id}/apply", apply)
    return app


def peak_rss(p: ProxyProcess) -> int:
    """VmHWM of the proxy process, in bytes."""
    for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def multipart_parts() -> tuple[bytes, bytes]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"job_title\"\r\n\r\n"
            f"Memory Engineer\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f"name=\"resume\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
            ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


async def upload_body(digest: hashlib._Hash) -> AsyncIterator[bytes]:
    head, tail = multipart_parts()
    for piece in [head, *(bytes([i % 251]) * CHUNK for i in range(SIZE // CHUNK)), tail]:
        digest.update(piece)
        yield piece


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[ProxyProcess]:
    runner, upstream = await serve(lambda _base: big_app())
    try:
        async with running(write_rules(tmp_path, upstream, RULES), tmp=tmp_path) as p:
            yield p
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_100mb_page_and_upload_pass_with_bounded_memory(proxy: ProxyProcess) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(proxy.url, timeout=timeout) as c:
        for _ in range(3):       # warm up: pools, compiled rules, first-request imports
            async with c.get("/small") as r:
                assert b"edge-marker" in await r.read()
        before = peak_rss(proxy)

        async with c.get("/big") as r:
            assert r.status == 200
            first = b""
            while b"</head>" not in first:     # read() may return less than asked
                chunk = await r.content.read(4096)
                assert chunk, first
                first += chunk
            assert b'<meta name="edge-marker" content="big">' in first
            injected = first.index(b"</head>") - HEAD.index(b"</head>")
            size, last = len(first), b""
            async for chunk in r.content.iter_chunked(CHUNK):
                size += len(chunk)
                last = (last + chunk)[-CHUNK:]
        assert size == len(HEAD) + injected + SIZE + len(b"</body></html>\n")
        assert last.endswith(FILLER[-100:] + b"</body></html>\n")

        sent = hashlib.sha256()
        head, tail = multipart_parts()
        length = len(head) + SIZE + len(tail)
        async with c.post("/jobs/7/apply", data=upload_body(sent), allow_redirects=False,
                          headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                   "Content-Length": str(length)}) as r:
            assert r.status == 303, await r.text()
            assert int(r.headers["X-Received"]) == length
            assert r.headers["X-Digest"] == sent.hexdigest()
        growth = peak_rss(proxy) - before
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / 2**20:.1f} MB"
