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

SPEC's measured promise is made with `--requests 500000` (several minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def run_wrk(url: str, seconds: int, connections: int, script: Path | None) -> tuple[int, int]:
    """(requests, errors) of one wrk segment."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    load = parse_wrk(out)
    return load.requests, load.errors


def load_until(url: str, admin_url: str, total: int, args: argparse.Namespace,
               script: Path | None, pid: int, label: str, seconds: float = 0.0
               ) -> tuple[int, int]:
    """Load in segments until `total` requests and `seconds` have both gone by."""
    done = errors = 0
    started = time.monotonic()
    while done < total or time.monotonic() - started < seconds:
        n, e = run_wrk(url, args.segment, args.connections, script)
        done, errors = done + n, errors + e
        rate = done / (time.monotonic() - started)
        print(f"  {label}: {done:>9,} requests  {errors} errors  {rate:,.0f} req/s  "
              f"RSS {rss_mb(pid):.1f} MB  {journeys(admin_url)}", flush=True)
    return done, errors


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=100_000, help="after the warm-up")
    p.add_argument("--warmup-seconds", type=int, default=75)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--segment", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--plain", action="store_true", help="no click id: the bare page only")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="careers-edge-soak-") as name:
        tmp = Path(name)
        script = None
        if not args.plain:
            script = tmp / "landing.lua"
            script.write_text(LANDING_LUA.replace("%s", PAGE_PATH))
        origin = start_origin(tmp)
        edge = start_edge(tmp, origin.url.removesuffix(PAGE_PATH))
        try:
            wait_page(origin)
            wait_page(edge)
            pid = edge.proc.pid
            start_rss = rss_mb(pid)
            print(f"careers-edge pid {pid}, RSS at start {start_rss:.1f} MB; warming up",
                  flush=True)
            warm, _ = load_until(edge.url, edge.admin_url, 0, args, script, pid, "warm-up",
                                 seconds=args.warmup_seconds)
            warm_rss = rss_mb(pid)
            print("soak", flush=True)
            done, errors = load_until(edge.url, edge.admin_url, args.requests, args, script, pid, "soak")
            time.sleep(2)          # let write-behind stores and the access log flush
            end_rss = rss_mb(pid)
        finally:
            for t in (edge, origin):
                t.proc.terminate()
                t.proc.wait(30)
    growth = (end_rss - warm_rss) / warm_rss
    verdict = "met" if growth <= TARGET_GROWTH else "NOT met"
    print(f"\n{'requests after warm-up':<28}{done:>12,}  ({errors} errors)")
    print(f"{'RSS at start':<28}{start_rss:>10.1f} MB")
    print(f"{'RSS after warm-up':<28}{warm_rss:>10.1f} MB  ({warm:,} requests, "
          f"{args.warmup_seconds} s)")
    print(f"{'RSS at the end':<28}{end_rss:>10.1f} MB  ({growth:+.1%} vs after warm-up; "
          f"target ≤ {TARGET_GROWTH:+.0%}: {verdict})")
    return 0 if growth <= TARGET_GROWTH else 1


if __name__ == "__main__":
    sys.exit(main())
