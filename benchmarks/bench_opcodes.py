"""Python bytecode instructions per request under wrk: careers-edge × the lean proxy.

CPU time per request moves with whatever else a shared machine runs; the number of
bytecode instructions a request executes does not, and on this stack it tracks the
CPU ratio closely (most of a request's time is spent running them). Each proxy runs
under `opcode_tracer.py` against the same nginx origin and job page as
`bench_passthrough.py`, is loaded with `wrk -t1 -c50`, and counts only while the
measured load runs. A request is one call of aiohttp's `BaseRequest.__init__` (a
coroutine is "called" again each time it resumes, so no handler is counted).

    lean proxy            `lean_proxy.py`
    stages floor          `floor_proxy.py`: the lean proxy plus careers-edge's stages
                          called straight (what the pipeline's glue adds is not there)
    edge, all features    the Meta pixel, rules, link rewriting, the access log
    edge, returning       the same process, each request with a returning
                          visitor's cookies

Printed: instructions per request, by stage of the request path (each function's
own instructions, grouped by its file), the ratio to the lean proxy (issue 11's CPU
target is ≤ 1.6 of the lean proxy's CPU), and the files and functions with the most.
Tracing makes every process ~20× slower; only the counts mean anything. With
`--baseline DIR` careers-edge also runs from another checkout, measured alike.

    python benchmarks/bench_opcodes.py [--duration 6] [--top 25] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench_passthrough import EDGES, FLOOR, FLOOR_PROXY, FULL, edge_rules
from side_by_side import (
    LEAN_PROXY,
    PAGE_PATH,
    RETURNING,
    SNIPPET,
    start_origin,
    stop_all,
    wait_page,
    wrk,
)

from proxy.bench import free_port

TRACER = Path(__file__).with_name("opcode_tracer.py")
# Each function's own instructions go to the first stage whose file matches: the
# request path's stages, as `stages.py` names them, measured under load.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attribution (Meta's builder included)",
     ("proxy/attribution/", "capi_param_builder/", "random.py", "proxy/random_ids.py",
      "proxy/request_view.py")),
    ("rules", ("proxy/detect/", "proxy/firing.py")),
    ("page: pixels, CSP, template", ("proxy/page.py", "proxy/pixels.py", "proxy/transform/",
                                     "proxy/page_script.py", "proxy/pixel_tags.py")),
    ("headers both ways", ("proxy/http/headers.py", "proxy/http/realip.py", "proxy/hosts.py",
                           "proxy/handoff.py")),
    ("access log", ("proxy/access_log.py", "proxy/app_log.py", "proxy/redact.py")),
    ("metrics", ("proxy/metrics.py", "prometheus_client/")),
    ("pipeline's own steps", ("proxy/pipeline.py", "proxy/edge.py", "proxy/response_head.py",
                              "proxy/http/target.py", "proxy/http/route_table.py",
                              "proxy/http/body.py", "proxy/http/websocket.py",
                              "proxy/conversions/events.py")),
    ("the response (head, framing, stand-in)", ("proxy/http/response.py",
                                               "proxy/http/server.py",
                                               "proxy/http/head_deadline.py",
                                               "aiohttp/web_response.py",
                                               "aiohttp/http_writer.py")),
    ("the upstream (pool, request, answer)", ("proxy/http/pool.py", "proxy/http/upstream",
                                             "proxy/http/request_head.py",
                                             "proxy/http/transport.py")),
    ("aiohttp's server (connection, request)", ("aiohttp/",)),
)
OTHER = "other (the handler, the event loop's Python, ...)"


def stage_of(key: str) -> str:
    path = key.split(":")[0]
    for stage, parts in STAGES:
        if any(part in path for part in parts):
            return stage
    return OTHER
REQUEST = " BaseRequest.__init__"      # aiohttp's: once per request


@dataclass
class Traced:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    out: Path
    headers: tuple[str, ...] = ()


def traced(tmp: Path, name: str, args: list[str], url_port: int,
           source: str | None = None) -> Traced:
    out = tmp / (name.replace(" ", "_").replace(",", "") + ".json")
    env = dict(os.environ, CAREERS_EDGE_ADMIN_LISTEN="off")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, str(LEAN_PROXY.parent.parent),
                                                    env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, str(TRACER), str(out), *args], cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Traced(name, f"http://127.0.0.1:{url_port}{PAGE_PATH}", proc, out)


def start_edge(tmp: Path, origin_url: str, name: str, source: str | None) -> Traced:
    rules = edge_rules(origin_url, tmp, name, True, True, True)
    port = free_port()
    return traced(tmp, name, ["-m", "proxy", "run", "-c", str(rules), "--listen",
                              f"127.0.0.1:{port}", "--workers", "1", "--log-level", "WARNING"],
                  port, source)


def measure(t: Traced, duration: float) -> tuple[int, Counter[str]]:
    """Instructions per function over one measured load, and the requests served."""
    wrk(t.url, 2, 50, t.headers)                 # warm-up: caches, pools, templates
    t.out.unlink(missing_ok=True)
    t.proc.send_signal(signal.SIGUSR2)
    wrk(t.url, duration, 50, t.headers)
    t.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 60
    while not t.out.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{t.name}: no counts written")
        time.sleep(0.1)
    rows = json.loads(t.out.read_text())
    requests = sum(c for k, (_, c) in rows.items() if k.endswith(REQUEST))
    return requests, Counter({k: n for k, (n, _) in rows.items()})


def report(name: str, requests: int, ops: Counter[str], top: int) -> float:
    per = sum(ops.values()) / max(requests, 1)
    print(f"\n{name}: {requests} requests, {per:,.0f} instructions per request")
    stages: Counter[str] = Counter()
    for k, n in ops.items():
        stages[stage_of(k)] += n
    print("  by stage (functions' own instructions, grouped by file):")
    for stage in [s for s, _ in STAGES] + [OTHER]:
        if stages[stage]:
            print(f"  {stages[stage] / requests:8.0f}  {stage}")
    files: Counter[str] = Counter()
    for k, n in ops.items():
        files[k.split(":")[0]] += n
    if top:
        print("  by file:")
    for f, n in files.most_common(top // 2):
        print(f"  {n / requests:8.0f}  {f}")
    if top:
        print("  functions (own instructions):")
    for k, n in ops.most_common(top):
        print(f"  {n / requests:8.0f}  {k}")
    return per


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=6.0, help="seconds of counted load")
    p.add_argument("--top", type=int, default=25, help="functions listed per target")
    p.add_argument("--baseline", metavar="DIR",
                   help="also run careers-edge from this checkout, as NAME (base)")
    args = p.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="careers-edge-opcodes-") as name:
        tmp = Path(name)
        origin = start_origin(tmp)
        origin_url = origin.url.removesuffix(PAGE_PATH)
        port = free_port()
        targets = [traced(tmp, "lean proxy", [str(LEAN_PROXY), origin_url, str(port), SNIPPET],
                          port)]
        port = free_port()
        rules = edge_rules(origin_url, tmp, FLOOR, *EDGES[FULL])
        targets.append(traced(tmp, FLOOR, [str(FLOOR_PROXY), origin_url, str(port), str(rules)],
                              port))
        sources: list[tuple[str, str | None]] = [(FULL, None)]
        if args.baseline:
            sources.append((FULL + " (base)", str(Path(args.baseline).resolve())))
        for edge_name, source in sources:
            edge = start_edge(tmp, origin_url, edge_name, source)
            targets += [edge, Traced(edge_name.replace("all features", "returning"), edge.url,
                                     edge.proc, edge.out, (RETURNING,))]
        try:
            wait_page(origin)   # type: ignore[arg-type]
            for t in targets:
                wait_page(t, timeout=120)    # type: ignore[arg-type]
            per = {}
            for t in targets:
                requests, ops = measure(t, args.duration)
                per[t.name] = report(t.name, requests, ops, args.top)
            print()
            lean = per["lean proxy"]
            for n, v in per.items():
                if n != "lean proxy":
                    print(f"{n:<32} {v:8,.0f} instructions/request  × lean proxy {v / lean:.2f}")
        finally:
            stop_all([origin.proc, *{id(t.proc): t.proc for t in targets}.values()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
