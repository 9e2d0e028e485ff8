"""Does careers-edge end a long load run with the memory it had after warm-up?

An nginx origin serves the demo's job page; careers-edge (`--workers 1`, the Meta
pixel, rules and link rewriting as in side_by_side.py) runs in front of it, and wrk
drives it in segments until `--requests` have gone through. By default every
request is a new visitor landing with its own `tlr_sid` (a wrk Lua script), so the
click-id capture, signed cookies and the journey store work on every request and
the proxy's caches see a stream of distinct URLs; `--plain` loads the bare page.
Each process's memory is sampled after the warm-up and after each segment
(`process_memory.py`): RSS, and PSS from /proc/PID/smaps_rollup split into anonymous
and file-backed, for the workers, the supervisor and the writer processes. Forked
workers share pages with the supervisor and each other, which RSS counts once per
process; PSS divides them, so the PSS of every process summed is what careers-edge
holds. The target is an end PSS within 10% of the post-warm-up one; the workers'
RSS summed, what this soak reported before, is printed beside it. The warm-up
is by time and outlasts the journey store's 60 s window of recently seen visitors
(a bounded cache that fills for its first minute under a stream of new visitors):
memory that grows before then is the cache filling, not a leak.

    python benchmarks/memory_soak.py [--requests 100000] [--warmup-seconds 75]
                                     [--connections 50] [--segment 15] [--plain]
                                     [--workers 2 [--no-single]]

With `--workers N` (N > 1) the soak runs twice, one worker then N (`--no-single`:
N only), and the two are reported side by side.

SPEC's measured promise is made with `--requests 500000` (several minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from process_memory import Sample, children, describe, mb, sample
from side_by_side import PAGE_PATH, start_edge, start_origin, wait_page

from proxy.bench import parse_wrk

TARGET_GROWTH = 0.10

# A fresh Talroo click id (a random UUID) on every request.
LANDING_LUA = """
math.randomseed(os.time())
local hex = "0123456789abcdef"
local function h(n)
  local t = {}
  for i = 1, n do
    local k = math.random(1, 16)
    t[i] = hex:sub(k, k)
  end
  return table.concat(t)
end
request = function()
  local id = h(8) .. "-" .. h(4) .. "-4" .. h(3) .. "-a" .. h(3) .. "-" .. h(12)
  return wrk.format("GET", "%s?tlr_sid=" .. id)
end
"""


def journey_metrics(admin_url: str, timeout: float = 5) -> dict[str, float]:
    """The journey store's backlog and drops, from the proxy's metrics (admin listener;
    with workers, those of the worker that answered). Raises OSError."""
    with urllib.request.urlopen(f"{admin_url}/_edge/metrics", timeout=timeout) as r:
        text = r.read().decode()
    found: dict[str, float] = {}
    for row in text.splitlines():
        for name in ("edge_journeys_pending", "edge_journeys_dropped_total"):
            if row.startswith(name):
                found[name] = found.get(name, 0.0) + float(row.rsplit(" ", 1)[1])
    return found


def journeys(admin_url: str) -> str:
    try:
        found = journey_metrics(admin_url)
    except OSError as exc:
        return f"metrics unavailable ({exc})"
    return (f"journeys pending {found.get('edge_journeys_pending', 0):,.0f} "
            f"dropped {found.get('edge_journeys_dropped_total', 0):,.0f}")


class BacklogWatch:
    """The largest journey backlog seen, polled twice a second. The write-behind
    buffer is bounded (`write_behind.MAX_PENDING`, ~1.5 KB a journey) but fills
    while its flush waits for the file, and what a peak allocated stays in the
    process's heaps afterwards: a memory step follows the largest backlog so far."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                pending = journey_metrics(self.admin_url, timeout=2)
            except OSError:
                continue
            self.peak = max(self.peak, int(pending.get("edge_journeys_pending", 0)))

    def take(self) -> int:
        """The peak since the last `take`."""
        peak, self.peak = self.peak, 0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wal_mb(tmp: Path) -> str:
    """The state's WAL and its index: a WAL that is never checkpointed grows without
    end, and its index is mapped into every process on the file (counted in RSS)."""
    sizes = []
    for suffix in ("-wal", "-shm"):
        try:
            sizes.append((tmp / f"edge.db{suffix}").stat().st_size / 2**20)
        except OSError:
            sizes.append(0.0)
    return f"WAL {sizes[0]:,.1f} MB (index {sizes[1]:.1f} MB)"


def run_wrk(url: str, seconds: int, connections: int, script: Path | None) -> tuple[int, int]:
    """(requests, errors) of one wrk segment."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    load = parse_wrk(out)
    return load.requests, load.errors


def load_until(url: str, admin_url: str, total: int, args: argparse.Namespace,
               script: Path | None, memory: Callable[[], Sample], label: str,
               backlog: BacklogWatch, seconds: float = 0.0,
               tmp: Path | None = None) -> tuple[int, int, int]:
    """Load in segments until `total` requests and `seconds` have both gone by;
    (requests, errors, the largest journey backlog seen)."""
    done = errors = peak = 0
    started = time.monotonic()
    while done < total or time.monotonic() - started < seconds:
        n, e = run_wrk(url, args.segment, args.connections, script)
        done, errors = done + n, errors + e
        rate = done / (time.monotonic() - started)
        seen = backlog.take()
        peak = max(peak, seen)
        print(f"  {label}: {done:>9,} requests  {errors} errors  {rate:,.0f} req/s  "
              f"{describe(memory())}  {journeys(admin_url)} (peak {seen:,})"
              + (f"  {wal_mb(tmp)}" if tmp is not None else ""), flush=True)
    return done, errors, peak


@dataclass
class Soak:
    workers: int
    requests: int
    errors: int
    warm_requests: int
    warm_backlog: int
    soak_backlog: int
    start: Sample
    warm: Sample
    end: Sample

    @property
    def rss_growth(self) -> float:
        """The workers' RSS summed, as the soak reported before PSS."""
        return self.end["workers"].rss / self.warm["workers"].rss - 1

    @property
    def growth(self) -> float:
        """PSS over every process: the supervisor, the workers, the writers."""
        return self.end.total.pss / self.warm.total.pss - 1


def soak(tmp: Path, workers: int, args: argparse.Namespace) -> Soak:
    """One soak: careers-edge with `workers` in front of a fresh origin."""
    script = None
    if not args.plain:
        script = tmp / "landing.lua"
        script.write_text(LANDING_LUA.replace("%s", PAGE_PATH))
    origin = start_origin(tmp)
    edge = start_edge(tmp, origin.url.removesuffix(PAGE_PATH), workers)
    try:
        wait_page(origin)
        wait_page(edge)
        pid = edge.proc.pid
        while workers > 1 and len(children(pid)) < workers:
            time.sleep(0.1)

        def memory() -> Sample:
            return sample(pid, workers)
        start = memory()
        print(f"careers-edge pid {pid}, {workers} worker(s), at start {describe(start)}; "
              "warming up", flush=True)
        backlog = BacklogWatch(edge.admin_url)
        warm, _, warm_backlog = load_until(edge.url, edge.admin_url, 0, args, script, memory,
                                           "warm-up", backlog, seconds=args.warmup_seconds,
                                           tmp=tmp)
        warm_sample = memory()
        print("soak", flush=True)
        done, errors, soak_backlog = load_until(edge.url, edge.admin_url, args.requests,
                                                args, script, memory, "soak", backlog,
                                                tmp=tmp)
        backlog.stop()
        time.sleep(2)          # let write-behind stores and the access log flush
        end = memory()
    finally:
        for t in (edge, origin):
            t.proc.terminate()
            t.proc.wait(30)
    return Soak(workers, done, errors, warm, warm_backlog, soak_backlog, start,
                warm_sample, end)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=100_000, help="after the warm-up")
    p.add_argument("--warmup-seconds", type=int, default=75)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--segment", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--plain", action="store_true", help="no click id: the bare page only")
    p.add_argument("--workers", type=int, default=1,
                   help="more than 1: soak one worker, then this many")
    p.add_argument("--no-single", action="store_true",
                   help="with --workers N: soak N workers only, not one worker first")
    args = p.parse_args()
    results = []
    for workers in sorted({args.workers} if args.no_single else {1, args.workers}):
        with tempfile.TemporaryDirectory(prefix="careers-edge-soak-") as name:
            results.append(soak(Path(name), workers, args))
    print(f"\n{'':<28}" + "".join(f"{f'{r.workers} worker(s)':>22}" for r in results))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:<28}" + "".join(f"{c:>22}" for c in cells))
    row("requests after warm-up", [f"{r.requests:,} ({r.errors} err)" for r in results])
    row("requests in warm-up", [f"{r.warm_requests:,} ({args.warmup_seconds} s)"
                                for r in results])
    row("journey backlog peak, warm-up", [f"{r.warm_backlog:,}" for r in results])
    row("journey backlog peak, soak", [f"{r.soak_backlog:,}" for r in results])
    stages = (("at start", "start"), ("after warm-up", "warm"), ("at the end", "end"))
    print("workers' RSS summed (pages shared after the fork counted once per worker):")
    for label, at in stages:
        row(f"  {label}", [f"{mb(getattr(r, at)['workers'].rss):.1f} MB" for r in results])
    row("  end vs after warm-up", [f"{r.rss_growth:+.1%}" for r in results])
    print("PSS (each page divided among the processes mapping it):")
    for role in ("workers", "supervisor", "writers"):
        for label, at in stages:
            row(f"  {role} {label}",
                [f"{mb(getattr(r, at)[role].pss):.1f} MB" if getattr(r, at).count[role]
                 else "-" for r in results])
    row("  workers anon / file, warm", [f"{mb(r.warm['workers'].pss_anon):.1f} / "
                                        f"{mb(r.warm['workers'].pss_file):.1f}" for r in results])
    row("  workers anon / file, end", [f"{mb(r.end['workers'].pss_anon):.1f} / "
                                       f"{mb(r.end['workers'].pss_file):.1f}" for r in results])
    for label, at in stages:
        row(f"  all processes {label}", [f"{mb(getattr(r, at).total.pss):.1f} MB"
                                         for r in results])
    row("  end vs after warm-up", [f"{r.growth:+.1%}" for r in results])
    met = all(r.growth <= TARGET_GROWTH for r in results)
    print(f"target ≤ {TARGET_GROWTH:+.0%} for each (PSS of every process): "
          f"{'met' if met else 'NOT met'}; by the workers' RSS: "
          f"{'met' if all(r.rss_growth <= TARGET_GROWTH for r in results) else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
