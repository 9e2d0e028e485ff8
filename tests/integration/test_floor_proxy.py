"""`benchmarks/floor_proxy.py` does careers-edge's work, so that its CPU per request is
a fair floor for careers-edge's: against a real upstream serving the demo's job page,
the floor answers with the Meta pixel injected, the visitor's cookies set, links
rewritten to its own origin and the request sent upstream as careers-edge sends it;
and its page and headers are careers-edge's own for the same upstream answer, but
for the ids each visitor gets afresh.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.demo.jobs import job_by_id
from proxy.demo.pages import job_page
from tests.integration.harness import free_port, stack
from tests.integration.procs import REPO, START_TIMEOUT, child_env, stop_with_parent

FLOOR = REPO / "benchmarks" / "floor_proxy.py"
PIXEL = "123456789012345"
NONCE = "Zmxvb3ItdGVzdC1ub25jZQ"
RULES = f"""
[pixels.meta]
type = "meta"
pixel_id = "{PIXEL}"
paths = ["/**"]
"""
CSP = f"default-src 'self'; script-src 'self' 'nonce-{NONCE}'"
ID = re.compile(rb"[0-9a-f]{32}")   # linksClickedId, event ids: new for every visitor


def job_site(seen: list[dict[str, str]]):
    def build(origin: str) -> web.Application:
        job = job_by_id("1")
        assert job is not None
        page = job_page(origin, job, NONCE).encode()

        async def serve(request: web.Request) -> web.Response:
            seen.append(dict(request.headers))
            return web.Response(body=page, content_type="text/html",
                                headers={"Content-Security-Policy": CSP})

        app = web.Application()
        app.router.add_get("/jobs/1", serve)
        return app
    return build


@asynccontextmanager
async def floor_proxy(upstream: str, rules: Path, tmp: Path) -> AsyncIterator[str]:
    port = free_port()
    with (tmp / "floor.stderr").open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(FLOOR), upstream, str(port), str(rules)],
                                env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=stop_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as s:
            while True:
                assert proc.poll() is None, (tmp / "floor.stderr").read_text()
                try:
                    async with s.get(url + "/jobs/1"):
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the floor proxy never answered"
                    await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def fetch(url: str) -> tuple[aiohttp.ClientResponse, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url + "/jobs/1") as r:
        return r, await r.read()


async def test_the_floor_injects_sets_cookies_and_rewrites_as_careers_edge_does(
        tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    async with stack(job_site(seen), RULES, tmp=tmp_path) as st, \
            floor_proxy(st.upstream_url, st.config_path, tmp_path) as floor:
        seen.clear()
        resp, body = await fetch(floor)
        assert resp.status == 200
        assert f"fbq('init',\"{PIXEL}\")".encode() in body
        cookies = resp.headers.getall("Set-Cookie")
        assert [c.split("=", 1)[0] for c in cookies] == ["linksClickedId", "_fbp"]
        visitor = cookies[0].split(";")[0].split("=", 1)[1]
        assert f'careersEdge.linksClickedId="{visitor}"'.encode() in body
        # Every link naming the upstream now names the floor's own origin.
        assert st.upstream_url.encode() not in body
        assert f'href="{floor}/jobs/2"'.encode() in body
        # The pixel's script is allowed by the page's CSP, as careers-edge plans it.
        assert "https://connect.facebook.net" in resp.headers["Content-Security-Policy"]
        # The request went upstream through `request_headers`: named, and marked as proxied.
        assert len(seen) == 1 and "X-Request-ID" in seen[0] and "Via" in seen[0]

        edge, edge_body = await fetch(st.proxy_url)
        assert edge.status == 200
        assert ID.sub(b"ID", edge_body.replace(st.proxy_url.encode(), b"PUBLIC")) \
            == ID.sub(b"ID", body.replace(floor.encode(), b"PUBLIC"))
        assert [c.split("=", 1)[0] for c in edge.headers.getall("Set-Cookie")] \
            == ["linksClickedId", "_fbp"]
        for name in ("Content-Type", "Content-Security-Policy", "Via", "Content-Length"):
            assert resp.headers.get(name) == edge.headers.get(name), name
