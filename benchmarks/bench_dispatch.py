"""Conversions per second the dispatcher delivers to a local sink.

    python benchmarks/bench_dispatch.py [--events 5000] [--state sqlite|redis://...]

Queues N events for a webhook sink and a Meta sink (batched) pointing at a local
aiohttp server that answers 200 at once, then starts a dispatcher and times until
every row is sent. The local server is the ceiling's other half: it runs in the same
process, so the figure is conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from aiohttp import web

from proxy.config.model import Sink
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox


async def sink_server() -> tuple[web.AppRunner, str, list[int]]:
    received = [0]

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.json_response({"events_received": 1})

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port
    return runner, f"http://127.0.0.1:{port}", received


async def run(events: int, state: str) -> None:
    runner, url, received = await sink_server()
    sinks = {
        "hook": Sink("hook", "webhook", url=f"{url}/hook", method="POST", secret="s",
                     concurrency=16, marketing=False),
        "meta": Sink("meta", "meta", pixel_id="1", access_token="t", api=url, concurrency=4),
    }
    if state.startswith("redis"):
        from proxy.conversions.redis_outbox import RedisOutbox
        outbox = RedisOutbox(state)
        await outbox.purge()
    else:
        outbox = SqliteOutbox(str(Path(tempfile.mkdtemp()) / "bench.db"))
    t0 = time.perf_counter()
    await asyncio.gather(*(
        outbox.submit(Event("ApplicationCompleted", links_clicked_id=f"v{i}", job_id="1",
                            url="https://careers.example/jobs/1", user_agent="bench",
                            client_ip="127.0.0.1"), list(sinks.values()), consent=True)
        for i in range(events)))
    queued_s = time.perf_counter() - t0
    dispatcher = Dispatcher(outbox, sinks, poll_interval=0.05)
    t0 = time.perf_counter()
    await dispatcher.start()
    while await outbox.pending_count():
        await asyncio.sleep(0.05)
    took = time.perf_counter() - t0
    await dispatcher.stop()
    await outbox.close()
    await runner.cleanup()
    rows = events * len(sinks)
    print(f"queued {events} events x {len(sinks)} sinks in {queued_s:.2f} s")
    print(f"delivered {rows} conversions in {took:.2f} s: {rows / took:,.0f} conversions/s "
          f"({received[0]} HTTP requests: Meta batches up to 1000 events)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--state", default="sqlite")
    args = ap.parse_args()
    asyncio.run(run(args.events, args.state))


if __name__ == "__main__":
    main()
