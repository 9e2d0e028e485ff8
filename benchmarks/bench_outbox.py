"""Outbox submit latency: what a visitor's response waits for when a rule fires.

    python benchmarks/bench_outbox.py [--submits N] [--concurrency 1,16,64]

Each level runs N submits (two sinks each, a fresh visitor every time) with that many
in flight, against a fresh SQLite file in a temp dir, and prints p50/p99/max of the
awaited `submit`, throughput, and submits per commit (group commit at work).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox

SINKS = [Sink("talroo", "talroo"), Sink("meta", "meta", pixel_id="1", access_token="t")]


async def level(path: str, submits: int, concurrency: int) -> dict[str, float]:
    box = SqliteOutbox(path)
    latencies: list[float] = []
    counter = iter(range(submits))

    async def client() -> None:
        for i in counter:
            e = Event("ApplicationCompleted", links_clicked_id=f"v{i}", job_id="42",
                      click_ids={"tlr_sid": "0f8e2c1a-1b2c-4d5e-8f90-123456789abc"},
                      user_agent="Mozilla/5.0", url="https://careers.example/jobs/42/thanks")
            t0 = time.perf_counter()
            await box.submit(e, SINKS, consent=True)
            latencies.append(time.perf_counter() - t0)

    commits0 = box.worker.commits
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    commits = box.worker.commits - commits0
    await box.close()
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49] * 1e3, "p99": q[98] * 1e3, "max": max(latencies) * 1e3,
            "rate": submits / elapsed, "per_commit": submits / max(commits, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submits", type=int, default=5000)
    ap.add_argument("--concurrency", default="1,16,64")
    args = ap.parse_args()
    print(f"{'in flight':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'submits/s':>10} "
          f"{'per commit':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n, c in enumerate(int(x) for x in args.concurrency.split(",")):
            r = asyncio.run(level(str(Path(tmp) / f"bench{n}.db"), args.submits, c))
            print(f"{c:>9} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['max']:>8.2f} "
                  f"{r['rate']:>10.0f} {r['per_commit']:>10.1f}")


if __name__ == "__main__":
    main()
