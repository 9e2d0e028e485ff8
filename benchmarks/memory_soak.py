"""Does careers-edge end a long load run with the memory it had after warm-up?

An nginx origin serves the demo's job page; careers-edge (`--workers 1`, the Meta
pixel, rules and link rewriting as in side_by_side.py) runs in front of it, and wrk
drives it in segments until `--requests` have gone through. By default every
request is a new visitor landing with its own `tlr_sid` (a wrk Lua script), so the
click-id capture, signed cookies and the journey store work on every request and
the proxy's caches see a stream of distinct URLs; `--plain` loads the bare page.
The proxy's resident set (VmRSS) is sampled after the warm-up and after each
segment; the target is an end RSS within 10% of the post-warm-up one. The warm-up
is by time and outlasts the journey store's 60 s window of recently seen visitors
(a bounded cache that fills for its first minute under a stream of new visitors):
memory that grows before then is the cache filling, not a leak.

    python benchmarks/memory_soak.py [--requests 100000] [--warmup-seconds 75]
                                     [--connections 50] [--segment 15] [--plain]
                                     [--workers 2]

With `--workers N` (N > 1) the soak runs twice, one worker then N, and the two are
reported side by side; with N workers the RSS is the workers' summed.

SPEC's measured promise is made with `--requests 500000` (several minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/<pid>/status")


def children(pid: int) -> list[int]:
    """The processes `pid` forked (the workers of a supervisor)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


def serving_rss_mb(pid: int, workers: int) -> float:
    """RSS of the processes that serve: the one process, or every worker summed (the
    supervisor, which serves nothing, left out)."""
    if workers == 1:
        return rss_mb(pid)
    total = 0.0
    for child in children(pid):
        try:
            total += rss_mb(child)
        except (OSError, RuntimeError):
            pass                          # a worker that just exited
    return total


def journeys(admin_url: str) -> str:
    """The journey store's backlog and drops, from the proxy's metrics (admin listener)."""
    try:
        with urllib.request.urlopen(f"{admin_url}/_edge/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        return f"metrics unavailable ({exc})"
    found = {}
    for line in text.splitlines():
        for name in ("edge_journeys_pending", "edge_journeys_dropped_total"):
            if line.startswith(name):
                found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return (f"journeys pending {found.get('edge_journeys_pending', 0):,.0f} "
            f"dropped {found.get('edge_journeys_dropped_total', 0):,.0f}")


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
               script: Path | None, rss: Callable[[], float], label: str,
               seconds: float = 0.0, tmp: Path | None = None) -> tuple[int, int]:
    """Load in segments until `total` requests and `seconds` have both gone by."""
    done = errors = 0
    started = time.monotonic()
    while done < total or time.monotonic() - started < seconds:
        n, e = run_wrk(url, args.segment, args.connections, script)
        done, errors = done + n, errors + e
        rate = done / (time.monotonic() - started)
        print(f"  {label}: {done:>9,} requests  {errors} errors  {rate:,.0f} req/s  "
              f"RSS {rss():.1f} MB  {journeys(admin_url)}"
              + (f"  {wal_mb(tmp)}" if tmp is not None else ""), flush=True)
    return done, errors


@dataclass
class Soak:
    workers: int
    requests: int
    errors: int
    warm_requests: int
    start_rss: float
    warm_rss: float
    end_rss: float

    @property
    def growth(self) -> float:
        return (self.end_rss - self.warm_rss) / self.warm_rss


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

        def rss() -> float:
            return serving_rss_mb(pid, workers)
        start_rss = rss()
        print(f"careers-edge pid {pid}, {workers} worker(s), RSS at start {start_rss:.1f} MB; "
              "warming up", flush=True)
        warm, _ = load_until(edge.url, edge.admin_url, 0, args, script, rss, "warm-up",
                             seconds=args.warmup_seconds, tmp=tmp)
        warm_rss = rss()
        print("soak", flush=True)
        done, errors = load_until(edge.url, edge.admin_url, args.requests, args, script, rss,
                                  "soak", tmp=tmp)
        time.sleep(2)          # let write-behind stores and the access log flush
        end_rss = rss()
    finally:
        for t in (edge, origin):
            t.proc.terminate()
            t.proc.wait(30)
    return Soak(workers, done, errors, warm, start_rss, warm_rss, end_rss)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=100_000, help="after the warm-up")
    p.add_argument("--warmup-seconds", type=int, default=75)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--segment", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--plain", action="store_true", help="no click id: the bare page only")
    p.add_argument("--workers", type=int, default=1,
                   help="more than 1: soak one worker, then this many (RSS summed over them)")
    args = p.parse_args()
    results = []
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory(prefix="careers-edge-soak-") as name:
            results.append(soak(Path(name), workers, args))
    print(f"\n{'':<28}" + "".join(f"{f'{r.workers} worker(s)':>22}" for r in results))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:<28}" + "".join(f"{c:>22}" for c in cells))
    row("requests after warm-up", [f"{r.requests:,} ({r.errors} err)" for r in results])
    row("requests in warm-up", [f"{r.warm_requests:,} ({args.warmup_seconds} s)"
                                for r in results])
    row("RSS at start", [f"{r.start_rss:.1f} MB" for r in results])
    row("RSS after warm-up", [f"{r.warm_rss:.1f} MB" for r in results])
    row("RSS at the end", [f"{r.end_rss:.1f} MB" for r in results])
    row("end vs after warm-up", [f"{r.growth:+.1%}" for r in results])
    met = all(r.growth <= TARGET_GROWTH for r in results)
    print(f"target ≤ {TARGET_GROWTH:+.0%} for each: {'met' if met else 'NOT met'}"
          + ("; RSS summed over the workers (the supervisor left out)"
             if args.workers > 1 else ""))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
