"""Requests/s of UpstreamPool vs a shared aiohttp.ClientSession, same upstream, same run.

The upstream runs in a child process on 127.0.0.1 (on uvloop when installed) and
serves a 4.7 KB HTML page: by default an aiohttp app; with `--upstream raw` a canned
response from a bare Protocol, fast enough that the clients' own cost shows (with an
aiohttp upstream on 2 cores, the upstream is often what saturates). Each client runs
CONNECTIONS concurrent workers doing GET + read the whole body for DURATION seconds,
in alternating rounds (the best round of each is printed: the machine may be shared).
Absolute numbers drift between machines and runs: compare the ratio.

    python benchmarks/bench_transport.py [--duration 3] [--connections 50] [--uvloop]
                                         [--upstream aiohttp|raw]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.http.transport import UpstreamPool

PAGE = (b"<!doctype html><html><head><title>Jobs</title></head><body>"
        + b"<div class='job'><h2>Engineer</h2><p>Build things.</p></div>" * 80)[:4686]
PAGE += b"</body></html>"
RAW_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n" % len(PAGE)) + PAGE


class RawUpstream(asyncio.Protocol):
    """Answers every request head with the canned page (keep-alive, no parsing)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\r\n\r\n")):
            self.transport.write(RAW_RESPONSE)


def serve(kind: str) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def main() -> None:
        if kind == "raw":
            server = await asyncio.get_running_loop().create_server(
                RawUpstream, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
        else:
            app = web.Application()
            app.router.add_get("/", page)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        await asyncio.Event().wait()
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


async def drive(one: Callable[[], Awaitable[int]], connections: int,
                duration: float) -> tuple[float, int]:
    """Run `one` in `connections` loops for `duration` s; return (req/s, errors)."""
    done = errors = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                if await one() == len(PAGE):
                    done += 1
                else:
                    errors += 1
            except Exception:  # noqa: BLE001 - any failure counts as an error
                errors += 1
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - start), errors


async def bench(port: int, connections: int, duration: float, rounds: int) -> None:
    origin = f"http://127.0.0.1:{port}"
    pool = UpstreamPool(origin, max_connections=connections)
    headers = [(b"Accept", b"text/html"), (b"User-Agent", b"bench")]

    async def ours() -> int:
        resp = await pool.request("GET", b"/", headers)
        n = 0
        async for chunk in resp:
            n += len(chunk)
        resp.release()
        return n

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))
    url = URL(origin + "/", encoded=True)

    async def theirs() -> int:
        async with session.get(url, headers={"Accept": "text/html", "User-Agent": "bench"}) as r:
            return len(await r.read())

    try:
        await drive(ours, connections, 0.5)          # warm up both: connections, caches
        await drive(theirs, connections, 0.5)
        ours_rps = theirs_rps = 0.0
        ours_err = theirs_err = 0
        for _ in range(rounds):                      # alternate; keep each one's best round
            rps, err = await drive(ours, connections, duration)
            ours_rps, ours_err = max(ours_rps, rps), ours_err + err
            rps, err = await drive(theirs, connections, duration)
            theirs_rps, theirs_err = max(theirs_rps, rps), theirs_err + err
    finally:
        await pool.close()
        await session.close()
    print(f"{'client':<28}{'req/s':>10}{'errors':>8}")
    print(f"{'UpstreamPool (httptools)':<28}{ours_rps:>10.0f}{ours_err:>8}")
    print(f"{'aiohttp.ClientSession':<28}{theirs_rps:>10.0f}{theirs_err:>8}")
    print(f"ratio UpstreamPool / ClientSession: {ours_rps / theirs_rps:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating rounds; the best round of each client is shown")
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    ap.add_argument("--upstream", choices=("aiohttp", "raw"), default="aiohttp")
    ap.add_argument("--serve", choices=("aiohttp", "raw"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    upstream = subprocess.Popen([sys.executable, __file__, "--serve", args.upstream],
                                stdout=subprocess.PIPE, text=True)
    try:
        port = int(upstream.stdout.readline())  # type: ignore[union-attr]
        print(f"{args.upstream} upstream 127.0.0.1:{port}, page {len(PAGE)} B, "
              f"{args.connections} connections, {args.rounds} x {args.duration:g} s each, loop: "
              f"{'uvloop' if args.uvloop else 'asyncio'}")
        if args.uvloop:
            import uvloop
            uvloop.run(bench(port, args.connections, args.duration, args.rounds))
        else:
            asyncio.run(bench(port, args.connections, args.duration, args.rounds))
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
