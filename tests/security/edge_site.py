"""What the edge-trust tests put around a real proxy process: a careers site that
records every request it gets, the recorder as Meta and a webhook, and the rules.

The site names its own origin everywhere a proxy must rewrite it (a link, a
Location, a cookie Domain), and one page fires a conversion to both sinks, so a test
sees what a network would: which host the visitor was sent to, which Domain the
cookies carry, which URL and IP the ad networks get.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from proxy.demo.recorder import Recorder
from tests.integration.harness import free_port, raw_exchange, start
from tests.integration.procs import ProxyProcess, running

PUBLIC = "careers.acme.example"
EVIL = "evil.example"
WEBHOOK_SECRET = "whsec-edge-trust"


@dataclass
class Site:
    """The upstream careers site; `seen` is every request it received."""

    origin: str = ""
    seen: list[web.Request] = field(default_factory=list)

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            self.seen.append(request)
            resp = web.Response(
                text=f'<!doctype html><html><head><title>Jobs</title></head><body>'
                     f'<a href="{self.origin}/jobs/1">Driver</a></body></html>',
                content_type="text/html")
            host = self.origin.split("//")[1].split(":")[0]
            resp.headers.add("Set-Cookie", f"sess=1; Domain={host}; Path=/; HttpOnly")
            return resp

        async def moved(request: web.Request) -> web.Response:
            self.seen.append(request)
            return web.Response(status=302, headers={"Location": f"{self.origin}/jobs"})

        async def echo(request: web.Request) -> web.Response:
            self.seen.append(request)
            return web.json_response({n.decode(): v.decode("latin-1")
                                      for n, v in request.raw_headers})

        async def count(request: web.Request) -> web.Response:
            self.seen.append(request)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/jobs", page)
        app.router.add_get("/thanks", page)
        app.router.add_get("/moved", moved)
        app.router.add_get("/echo", echo)
        app.router.add_route("*", "/{tail:.*}", count)
        return app


RULES = """
[proxy]
upstream = "{upstream}"
state = "sqlite:///{state}"
timeout = 10
{proxy}

[log]
access = "json"

[[rules]]
name = "application completed"
event = "ApplicationCompleted"
method = "GET"
path = "/thanks"
status = [200]
dedupe_hours = 0
send_to = ["meta", "hook"]

[sinks.meta]
type = "meta"
pixel_id = "123456789012345"
access_token = "token-edge-trust"
api = "{recorder}/v21.0"

[sinks.hook]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "{secret}"
{extra}
"""


@dataclass
class Edge:
    proxy: ProxyProcess
    site: Site
    recorder: Recorder

    async def raw(self, request: bytes, *, admin: bool = False) -> bytes:
        """Send raw bytes to the proxy (or its admin listener), return the raw answer."""
        return await raw_exchange(self.proxy.admin_url if admin else self.proxy.url, request)

    async def get(self, path: str, *headers: str, admin: bool = False) -> bytes:
        """A GET with exactly these header lines (Host included, or none at all)."""
        head = "".join(h + "\r\n" for h in headers)
        return await self.raw(f"GET {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n"
                              .encode("latin-1"), admin=admin)

    async def access_log(self, predicate, timeout: float = 10.0) -> list[dict]:
        """The access log's records (the proxy's stdout) once one satisfies `predicate`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = [json.loads(line) for line in self.proxy.stdout().splitlines()
                       if line.startswith("{")]
            if any(predicate(r) for r in records):
                return records
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no such access log record in {records}")
            await asyncio.sleep(0.05)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def headers_of(raw: bytes) -> list[tuple[str, str]]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (h.partition(":") for h in head)]


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


@asynccontextmanager
async def edge(tmp: Path, proxy: str = "", extra: str = "", *, env: dict | None = None,
               args: tuple[str, ...] = ()) -> AsyncIterator[Edge]:
    """The site, the recorder and `careers-edge run` with `proxy` added to `[proxy]`."""
    site = Site()
    port = free_port()
    site.origin = f"http://127.0.0.1:{port}"
    site_runner, _ = await start(site.app(), port)
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rules = tmp / "rules.toml"
    rules.write_text(RULES.format(
        upstream=site.origin, state=tmp / "state.db", recorder=f"http://127.0.0.1:{rec_port}",
        secret=WEBHOOK_SECRET, proxy=textwrap.dedent(proxy), extra=textwrap.dedent(extra)))
    try:
        async with running(rules, tmp=tmp, env=env, args=args) as p:
            yield Edge(p, site, recorder)
    finally:
        await rec_runner.cleanup()
        await site_runner.cleanup()
