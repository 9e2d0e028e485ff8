"""The lean proxy: the floor for any proxy on careers-edge's stack.

aiohttp's low-level server (`web.Server`: no router, middleware or signals) fetches
the page through careers-edge's upstream pool and answers with it, the same script
tag put before `</head>` with `bytes.replace` (what nginx's `sub_filter` does).
Nothing else: no attribution, rules, header filtering, metrics or log. `side_by_side.py`
and `bench_passthrough.py` both measure it; careers-edge's figures are read against it.

    python benchmarks/lean_proxy.py ORIGIN_URL PORT SNIPPET
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from proxy.http.transport import UpstreamPool

Handler = Callable[[web.BaseRequest], Awaitable[web.Response]]


def handler(pool: UpstreamPool, snippet: bytes) -> Handler:
    """The lean proxy's whole request path (`stages.py` runs it in process too)."""
    needle = b"</head>"
    insert = snippet + needle

    async def handle(request: web.BaseRequest) -> web.Response:
        up = await pool.request(request.method, request.raw_path.encode(), [])
        try:
            body = await up.read()
        finally:
            up.release()
        return web.Response(body=body.replace(needle, insert, 1), status=up.status,
                            content_type="text/html")
    return handle


async def serve(origin: str, port: int, snippet: bytes) -> None:
    runner = web.ServerRunner(web.Server(handler(UpstreamPool(origin), snippet),
                                         access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    origin, port, snippet = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uvloop.run(serve(origin, port, snippet.encode()))


if __name__ == "__main__":
    main()
