"""A live stream on a real proxy process: SIGTERM ends it at once and the process
exits 0; the stream does not hold the shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp

from proxy.demo.site import build_site, serve
from tests.integration.procs import running, write_rules


async def test_sigterm_ends_an_open_stream_and_the_process_exits_zero(tmp_path: Path) -> None:
    runner, upstream = await serve(build_site)
    try:
        async with running(write_rules(tmp_path, upstream), tmp=tmp_path) as p, \
                aiohttp.ClientSession() as c, \
                c.get(f"{p.admin_url}{p.prefix}/api/stream") as r:
            assert r.status == 200
            assert await r.content.readline() == b"retry: 2000\n"
            p.send(signal.SIGTERM)
            rest = await r.content.read()          # the server ends the stream
            assert rest in (b"\n", b"")
            assert await p.wait_exit() == 0
            assert "Traceback" not in p.stderr()
    finally:
        await runner.cleanup()
