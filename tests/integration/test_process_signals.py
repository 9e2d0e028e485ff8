"""The proxy process under signals: SIGTERM drains and exits 0; SIGHUP and a file edit reload.

Every test runs `python -m proxy run` as a subprocess against an upstream served
from the test process over loopback.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.demo.site import build_site, serve
from tests.integration.procs import metric_value, running, write_rules

SLOW_SECONDS = 1.5
SLOW_BODY = b"slow answer " * 10_000
RELOAD_WAIT = 10.0


def slow_app(started: asyncio.Event) -> web.Application:
    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(SLOW_SECONDS)
        return web.Response(body=SLOW_BODY, content_type="text/plain")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    return app


async def serve_app(app: web.Application) -> tuple[web.AppRunner, str]:
    return await serve(lambda _base: app)


async def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    started = asyncio.Event()
    runner, upstream = await serve_app(slow_app(started))
    try:
        async with running(write_rules(tmp_path, upstream), tmp=tmp_path) as p:
            async with aiohttp.ClientSession() as client:
                async def fetch_slow() -> tuple[int, bytes]:
                    async with client.get(f"{p.url}/slow") as r:
                        return r.status, await r.read()

                in_flight = asyncio.create_task(fetch_slow())
                await asyncio.wait_for(started.wait(), 10)
                p.send(signal.SIGTERM)
                await p.wait_log("draining")
                # A new connection after SIGTERM is refused, reset, or told 503.
                async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(force_close=True)) as fresh:
                    try:
                        async with fresh.get(f"{p.url}/fast") as r:
                            assert r.status == 503
                    except aiohttp.ClientConnectionError:
                        pass
                status, body = await in_flight
            assert status == 200
            assert body == SLOW_BODY
            assert await p.wait_exit() == 0
            assert "Traceback" not in p.stderr()
    finally:
        await runner.cleanup()


# --- reload ---------------------------------------------------------------------------

PIXEL = """
[pixels.marker]
type = "html"
paths = ["/**"]
html = '<meta name="edge-marker" content="{marker}">'
"""


def replace_file(path: Path, text: str) -> None:
    """Write the way editors save: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def marker_of(client: aiohttp.ClientSession, url: str) -> str | None:
    async with client.get(f"{url}/jobs") as r:
        assert r.status == 200
        m = re.search(r'<meta name="edge-marker" content="([^"]*)">', await r.text())
        return m.group(1) if m else None


async def wait_marker(client: aiohttp.ClientSession, url: str, want: str) -> None:
    deadline = time.monotonic() + RELOAD_WAIT
    while (seen := await marker_of(client, url)) != want:
        assert time.monotonic() < deadline, f"marker still {seen!r}, wanted {want!r}"
        await asyncio.sleep(0.1)


def reload_count(metrics: str, result: str) -> float:
    return metric_value(metrics, "edge_rules_reload_total", result=result)


async def test_rules_reload_on_sighup_on_file_change_and_refused_when_invalid(
        tmp_path: Path) -> None:
    runner, upstream = await serve(build_site)
    try:
        rules = write_rules(tmp_path, upstream, PIXEL.replace("{marker}", "v1"))
        head = rules.read_text().split("[pixels.marker]")[0]
        async with running(rules, tmp=tmp_path) as p, aiohttp.ClientSession() as client:
            assert await marker_of(client, p.url) == "v1"

            # SIGHUP: the new snippet serves, and the SIGHUP path is what loaded it.
            replace_file(rules, head + PIXEL.replace("{marker}", "v2"))
            p.send(signal.SIGHUP)
            await wait_marker(client, p.url, "v2")
            await p.wait_log("rules reloaded (SIGHUP)")

            # An edit on disk alone is picked up by the watcher.
            replace_file(rules, head + PIXEL.replace("{marker}", "v3"))
            await wait_marker(client, p.url, "v3")
            await p.wait_log("rules reloaded (file changed)")
            ok = reload_count(await p.metrics(), "ok")
            assert ok >= 2

            # An invalid file is refused: logged with its key, counted, old rules serve.
            broken = head + PIXEL.replace("{marker}", "v4") + (
                '\n[[rules]]\nname = "x"\nevent = "E"\npath = "/a"\nsend_to = ["nowhere"]\n')
            replace_file(rules, broken)
            p.send(signal.SIGHUP)
            log = await p.wait_log("refused")
            assert re.search(r"rules\.toml:\d+: rules\[0\]\.send_to", log), log
            assert "Traceback" not in log
            metrics = await p.metrics()
            assert reload_count(metrics, "invalid") >= 1
            assert reload_count(metrics, "ok") == ok
            assert await marker_of(client, p.url) == "v3"

            # And a fixed file after a refused one applies again.
            replace_file(rules, head + PIXEL.replace("{marker}", "v5"))
            p.send(signal.SIGHUP)
            await wait_marker(client, p.url, "v5")
    finally:
        await runner.cleanup()
