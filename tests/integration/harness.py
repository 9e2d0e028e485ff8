"""An upstream, a recorder and the proxy in one event loop, on real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web

from proxy.app import admin_runner, build_app, edge_runner
from proxy.config.load import load_config
from proxy.demo.recorder import Recorder
from proxy.edge import EDGE, Edge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(app: web.Application, port: int | None = None, *,
                proxy: bool = False) -> tuple[web.BaseRunner, int]:
    """Serve `app` on loopback; `proxy=True` serves a `build_app` application as
    `careers-edge run` does (`edge_runner`)."""
    runner = edge_runner(app, access_log=None) if proxy else web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


@dataclass
class Stack:
    proxy_url: str
    upstream_url: str
    recorder_url: str
    recorder: Recorder
    app: web.Application
    config_path: Path
    admin_url: str = ""

    @property
    def edge(self) -> Edge:
        return self.app[EDGE]

    def session(self, **kw) -> aiohttp.ClientSession:
        kw.setdefault("cookie_jar", aiohttp.CookieJar(unsafe=True))
        kw.setdefault("auto_decompress", False)
        return aiohttp.ClientSession(self.proxy_url, **kw)

    def admin(self, **kw) -> aiohttp.ClientSession:
        """A session on the admin listener (healthz, readyz, metrics)."""
        return aiohttp.ClientSession(self.admin_url, **kw)

    async def metrics(self) -> str:
        async with self.admin() as c, c.get("/_edge/metrics") as r:
            assert r.status == 200
            return await r.text()


BASE_RULES = """
[proxy]
upstream = "{upstream}"
state = "{state}"
timeout = {timeout}
{proxy_extra}
"""
NO_ACCESS_LOG = '\n[log]\naccess = "off"\n'      # unless the test's rules have a [log]


@asynccontextmanager
async def stack(upstream: web.Application | Callable[[str], web.Application],
                rules: str = "", *, tmp: Path,
                timeout: float = 5, env: dict[str, str] | None = None,
                dispatch: bool = True, proxy_extra: str = "",
                upstream_url: str | None = None, app_runner: bool = False,
                access_stream: IO[bytes] | None = None,
                state: str | None = None) -> AsyncIterator[Stack]:
    """`upstream_url` points the proxy somewhere else than `upstream` (a dead port, say);
    `app_runner` serves the proxy under a plain `web.AppRunner` (its catch-all route);
    `access_stream` takes the access log lines (rules with a `[log]` section say how);
    `state` replaces the SQLite file in `tmp` (a Redis URL, say)."""
    if not isinstance(upstream, web.Application):
        port = free_port()   # the app wants its own base URL before it is built
        upstream = upstream(f"http://127.0.0.1:{port}")
        up_runner, up_port = await start(upstream, port)
    else:
        up_runner, up_port = await start(upstream)
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    upstream_url = upstream_url or f"http://127.0.0.1:{up_port}"
    recorder_url = f"http://127.0.0.1:{rec_port}"
    state = state or f"sqlite:///{tmp / 'state.db'}"
    text = BASE_RULES.format(upstream=upstream_url, state=state, timeout=timeout,
                             proxy_extra=proxy_extra)
    text += textwrap.dedent(rules).replace("{recorder}", recorder_url)
    if "[log]" not in rules:
        text += NO_ACCESS_LOG
    path = tmp / "rules.toml"
    path.write_text(text)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        config = load_config(path)
        app = build_app(config, dispatch=dispatch, access_stream=access_stream)
        px_runner, px_port = await start(app, proxy=not app_runner)
        adm_runner = admin_runner(app, access_log=None)
        await adm_runner.setup()
        adm_port = free_port()
        await web.TCPSite(adm_runner, "127.0.0.1", adm_port).start()
        try:
            yield Stack(f"http://127.0.0.1:{px_port}", upstream_url, recorder_url, recorder,
                        app, path, f"http://127.0.0.1:{adm_port}")
        finally:
            await adm_runner.cleanup()
            await px_runner.cleanup()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        await rec_runner.cleanup()
        await up_runner.cleanup()


async def raw_exchange(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the proxy and read what comes back until it closes or goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and len(chunks) > 0:
                # enough for a status line and headers; stop once the server goes quiet
                timeout = 0.5
    except TimeoutError:
        pass
    finally:
        writer.close()
    return b"".join(chunks)
