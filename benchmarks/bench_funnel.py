"""The operators' funnel over many journeys: `GET /_edge/api/funnel` on the admin listener.

    python benchmarks/bench_funnel.py [--journeys 1000000] [--events 0.05] [--calls 20]
                                      [--redis redis://127.0.0.1:6379/15]

Fills the state through the stores' own write paths — `JourneyStore.record` and flush
(journeys over the last 90 days, each with one or two click ids of four params) and
`Outbox.submit` for a share of them (ConversationStart, ApplicationCompleted, Hire over
five jobs) — then serves the state with `build_app` and times the funnel API over a
real socket (`days=400`, by source and by job). For reference, on SQLite it also times
one scan of the journeys table, what a funnel computed from journeys would cost at least.
`--redis URL` uses that Redis instead of a SQLite file: the database is FLUSHED first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import redis as sync_redis
from aiohttp import web

from proxy.app import admin_runner, build_app
from proxy.attribution.clickids import ClickId
from proxy.attribution.visit import Visit
from proxy.config.load import load_config
from proxy.conversions.events import Event
from proxy.edge import AccessLog
from proxy.metrics import Metrics
from proxy.stores import open_stores

PARAMS = ("tlr_sid", "gclid", "fbclid", "ittk")
JOBS = ("Nurse", "Driver", "Engineer", "Designer", "Associate")
STEPS = ("ConversationStart", "ApplicationCompleted", "Hire")
BATCH = 10_000          # the journey buffer's bound (write_behind.MAX_PENDING)
IN_FLIGHT = 64          # submits at once (visitors' confirmation pages)
RULES = """
[proxy]
upstream = "http://127.0.0.1:9"
state = "{state}"
access_log = false
"""


def visitor(i: int, rng: random.Random, now: float) -> Visit:
    seen = now - rng.random() * 90 * 86400
    params = rng.sample(PARAMS, rng.choice((1, 1, 1, 2)))
    clicks = {p: ClickId(f"{p}-{i}", seen) for p in params}
    return Visit(f"{i:032x}", False, clicks, [], [], False, True, None, None, [], None)


async def fill(config_path: Path, journeys: int, share: float) -> tuple[float, float, int]:
    config = load_config(config_path)
    stores = open_stores(config, Metrics())
    rng = random.Random(7)
    now = time.time()
    started = time.perf_counter()
    store = stores.journeys
    for start in range(0, journeys, BATCH):
        for i in range(start, min(start + BATCH, journeys)):
            store.record(visitor(i, rng, now), now=now)
        await store.flush()
    journeys_s = time.perf_counter() - started
    started = time.perf_counter()
    picked = [i for i in range(journeys) if rng.random() < share]
    for start in range(0, len(picked), IN_FLIGHT):
        await asyncio.gather(*(stores.outbox.submit(Event(
            rng.choice(STEPS), links_clicked_id=f"{i:032x}",
            click_ids={rng.choice(PARAMS): f"v{i}"}, job_name=rng.choice(JOBS), rule="bench"),
            [], consent=True) for i in picked[start:start + IN_FLIGHT]))
    events_s = time.perf_counter() - started
    await store.stop()
    await stores.outbox.close()
    return journeys_s, events_s, len(picked)


async def time_api(config_path: Path, calls: int) -> dict[str, list[float]]:
    app = build_app(load_config(config_path), access_log=AccessLog(enabled=False),
                    dispatch=False)
    runner = web.AppRunner(app)
    await runner.setup()
    admin = admin_runner(app, access_log=None)
    await admin.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(admin, "127.0.0.1", port).start()
    out: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as c:
            for by in ("source", "job"):
                times = out[by] = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    async with c.get(f"/_edge/api/funnel?days=400&by={by}") as r:
                        body = await r.json()
                        assert r.status == 200, body
                    times.append(time.perf_counter() - t0)
                out[f"{by} rows"] = [float(len(body["rows"]))]
    finally:
        await admin.cleanup()
        await runner.cleanup()
    return out


def scan_seconds(db: str) -> float:
    conn = sqlite3.connect(db)
    t0 = time.perf_counter()
    conn.execute("SELECT date(first_seen, 'unixepoch') AS d, count(*) FROM journeys"
                 " GROUP BY d").fetchall()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--events", type=float, default=0.05, help="share of journeys")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--redis", help="a Redis URL whose database is flushed and used")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "state.db")
        if args.redis:
            sync_redis.Redis.from_url(args.redis).flushdb()
        state = args.redis or f"sqlite:///{db}"
        config_path = Path(tmp) / "rules.toml"
        config_path.write_text(RULES.format(state=state))
        journeys_s, events_s, events = asyncio.run(fill(config_path, args.journeys,
                                                        args.events))
        print(f"state: {'redis' if args.redis else 'sqlite'}; filled {args.journeys} "
              f"journeys in {journeys_s:.1f} s, {events} events in {events_s:.1f} s")
        timings = asyncio.run(time_api(config_path, args.calls))
        for by in ("source", "job"):
            t = sorted(timings[by])
            print(f"GET /api/funnel?days=400&by={by}: {int(timings[by + ' rows'][0])} rows, "
                  f"p50 {statistics.median(t) * 1000:.1f} ms, max {t[-1] * 1000:.1f} ms "
                  f"({len(t)} calls)")
        if not args.redis:
            print(f"reference: one scan of the journeys table {scan_seconds(db) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
