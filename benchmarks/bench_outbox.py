"""Outbox submit latency: what a visitor's response waits for when a rule fires.

    python benchmarks/bench_outbox.py [--submits N] [--concurrency 1,16,64] [--busy]
                                      [--switch-interval SECONDS] [--visits PER_SECOND]
                                      [--compare ROUNDS] [--baseline DIR [--rounds N]]
                                      [--dir DIR]

Each level runs N submits (two sinks each, a fresh visitor every time) with that many
in flight, against a fresh SQLite file in a temp dir, and prints p50/p99/max of the
awaited `submit`, throughput, and submits per commit (group commit at work); "txn"
is the writer process's transaction alone (write lock to COMMIT), from its answers.
`--busy` keeps the event loop itself busy meanwhile (a task doing ~200 µs of
Python work per turn, as a proxy serving pages does): a writer thread, which lets go
of the GIL at every SQLite step, then gets it back only at the interpreter's switch
interval (`--switch-interval`, Python's default 0.005 s); the outbox's writer process
does not share the loop's GIL.

`--compare ROUNDS` runs each level ROUNDS times over, alternating the submit as it
ran before the writer process (in the file's writer thread) and the outbox's submit,
and prints both: the two see the same moments of a shared machine.

`--baseline DIR` runs each level ROUNDS times (`--rounds`, default 4) over, alternating
this tree and another checkout (each round in a fresh interpreter, with that tree's own
`level`), and prints both, pooled, with the load average the rounds saw: before and
after a change, at the same moments of a shared machine.

`--visits` also records that many visitors' journeys per second in the same file, as
a proxy does (the journey store, flushed each second through the outbox's writer
process, in slices that share its transactions with the submits).

The last line is the floor the disk sets in the same run: one synced commit
(`synchronous=FULL`, WAL, one small row) at a time, no event loop, no outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proxy.attribution.journeys import JourneyStore
from proxy.attribution.visit import ClickId, Visit
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.routing import route
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.sqlite_submit import Submit, submit_many

SINKS = [Sink("talroo", "talroo"), Sink("meta", "meta", pixel_id="1", access_token="t")]


async def busy_loop(stop: asyncio.Event) -> None:
    """The event loop's share of a busy proxy: Python work in ~200 µs turns."""
    while not stop.is_set():
        end = time.perf_counter() + 0.0002
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


async def visits(journeys: JourneyStore, per_second: float, stop: asyncio.Event) -> None:
    """New visitors with a click id each, `per_second` of them, in 10 ms ticks."""
    n = 0
    while not stop.is_set():
        for _ in range(max(1, round(per_second / 100))):
            n += 1
            journeys.record(Visit(
                links_clicked_id=f"j{n:031d}", new_visitor=True,
                click_ids={"gclid": ClickId(f"g{n}", time.time())}, captured=["gclid"],
                rejected=[], cookie_rejected=False, consent=True, fbc=None, fbp=None,
                set_cookies=[], upstream_query=None))
        await asyncio.sleep(0.01)


async def thread_submit(box: SqliteOutbox, event: Event) -> None:
    """The submit as it ran before the writer process: in the file's writer thread."""
    plan = route(event, SINKS, consent=True)
    await box.worker.run_many(submit_many, Submit(event, plan, time.time()))


async def level(path: str, submits: int, concurrency: int, busy: bool,
                per_second: float = 0, via: str = "process") -> Run:
    stop = asyncio.Event()
    busy_task = asyncio.create_task(busy_loop(stop)) if busy else None
    box = SqliteOutbox(path)
    journeys = JourneyStore(path, writer=box.writer) if per_second else None
    await box.start()           # after the journeys, as the app: the child imports both
    visit_task = None
    if journeys is not None:
        await journeys.start()
        visit_task = asyncio.create_task(visits(journeys, per_second, stop))
    latencies: list[float] = []
    counter = iter(range(submits))

    async def client() -> None:
        for i in counter:
            e = Event("ApplicationCompleted", links_clicked_id=f"v{i}", job_id="42",
                      click_ids={"tlr_sid": "0f8e2c1a-1b2c-4d5e-8f90-123456789abc"},
                      user_agent="Mozilla/5.0", url="https://careers.example/jobs/42/thanks")
            t0 = time.perf_counter()
            if via == "thread":
                await thread_submit(box, e)
            else:
                await box.submit(e, SINKS, consent=True)
            latencies.append(time.perf_counter() - t0)

    commits0 = box.commits
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    stop.set()
    for task in (busy_task, visit_task):
        if task is not None:
            await task
    if journeys is not None:
        await journeys.stop()
    commits = box.commits - commits0
    await box.close()
    return Run(latencies, elapsed, commits, list(box.writer.group_seconds))


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    commits: int = 0
    groups: list[float] = field(default_factory=list)   # the writer process's transactions

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.elapsed += other.elapsed
        self.commits += other.commits
        self.groups += other.groups

    def row(self, label: str) -> str:
        q = statistics.quantiles(self.latencies, n=100)
        n = len(self.latencies)
        row = (f"{label:>9} {q[49] * 1e3:>8.3f} {q[98] * 1e3:>8.3f} "
               f"{max(self.latencies) * 1e3:>8.2f} {n / self.elapsed:>10.0f} "
               f"{n / max(self.commits, 1):>10.1f}")
        if len(self.groups) < 2:
            return row + f" {'':>17}"
        g = statistics.quantiles(self.groups, n=100)
        return row + f" {g[49] * 1e3:>8.3f} {g[98] * 1e3:>8.3f}"


# One level in a fresh interpreter, by the bench_outbox of the checkout on its path.
_IN_TREE = ("import asyncio, json, sys, bench_outbox as b\n"
            "r = asyncio.run(b.level(*json.loads(sys.argv[1])))\n"
            "print(json.dumps([r.latencies, r.elapsed, r.commits, r.groups]))")


def tree_level(tree: str, *args: object) -> Run:
    """`level(*args)` as the checkout at `tree` runs it (its own proxy and bench)."""
    root = str(Path(tree).resolve())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((root, str(Path(root) / "benchmarks")))}
    out = subprocess.run([sys.executable, "-c", _IN_TREE, json.dumps(args)], env=env,
                         capture_output=True, text=True, check=True).stdout
    latencies, elapsed, commits, groups = json.loads(out.splitlines()[-1])
    return Run(latencies, elapsed, commits, groups)


def floor(path: str, commits: int) -> dict[str, float]:
    """A synced commit alone: what no submit can beat on this disk now."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (n INTEGER)")
    latencies = []
    for i in range(commits):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
    conn.close()
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49] * 1e3, "p99": q[98] * 1e3, "max": max(latencies) * 1e3,
            "rate": len(latencies) / sum(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submits", type=int, default=5000)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--busy", action="store_true", help="keep the event loop busy meanwhile")
    ap.add_argument("--switch-interval", type=float, default=None)
    ap.add_argument("--visits", type=float, default=0,
                    help="journeys recorded per second in the same file meanwhile")
    ap.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                    help="alternate the writer thread and the writer process, ROUNDS times "
                         "per level, each with submits/ROUNDS submits")
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="another checkout, run alternately with this tree, per level")
    ap.add_argument("--rounds", type=int, default=4,
                    help="with --baseline: rounds per level, each submits/ROUNDS submits")
    ap.add_argument("--dir", default=None,
                    help="where the SQLite files go (default: the temp dir); /dev/shm "
                         "takes the disk's sync out of the figures")
    args = ap.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    print(f"{'in flight':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'submits/s':>10} "
          f"{'per commit':>10} {'txn p50':>8} {'txn p99':>8}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        files = (str(Path(tmp) / f"bench{n}.db") for n in itertools.count())
        loads = [os.getloadavg()[0]]
        for c in (int(x) for x in args.concurrency.split(",")):
            if args.baseline:
                trees = {"baseline": Run(), "this tree": Run()}
                roots = {"baseline": args.baseline, "this tree": str(Path(__file__).parent.parent)}
                for r in range(args.rounds):
                    for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                        trees[name].add(tree_level(roots[name], next(files),
                                                   args.submits // args.rounds, c, args.busy,
                                                   args.visits))
                    loads.append(os.getloadavg()[0])
                for name, run in trees.items():
                    print(run.row(str(c)) + f"     {name}")
                continue
            if not args.compare:
                r = asyncio.run(level(next(files), args.submits, c, args.busy, args.visits))
                print(r.row(str(c)))
                continue
            runs = {"thread": Run(), "process": Run()}
            for _ in range(args.compare):
                for via, run in runs.items():
                    run.add(asyncio.run(level(next(files), args.submits // args.compare, c,
                                              args.busy, args.visits, via)))
            for via, run in runs.items():
                print(run.row(str(c)) + f"     {via}")
        f = floor(str(Path(tmp) / "floor.db"), min(args.submits, 2000))
        print(f"{'floor':>9} {f['p50']:>8.3f} {f['p99']:>8.3f} {f['max']:>8.2f} "
              f"{f['rate']:>10.0f}   (one synced commit alone)")
        if args.baseline:
            print(f"load average (1 min) over the rounds: {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
