"""The proxy's own cost per request, beside what an aiohttp front can reach at all.

The same ~4.8 KB job page as side_by_side.py, served by an nginx origin, loaded with
`wrk -t1 -cN -dSs` through each of:

    nginx direct           the origin itself
    nginx + sub_filter     as in side_by_side.py
    aiohttp itself         a 10-line aiohttp app (uvloop) answering with the page from
                           memory: the ceiling for any aiohttp front on this machine
    lean proxy             aiohttp's low-level server fetching the page through
                           careers-edge's upstream pool and answering with it: no
                           attribution, rules, header filtering, metrics or log — the
                           floor for a proxy on this stack
    edge pass-through      careers-edge, no pixel, `rewrite_links = false`,
                           `access_log = false`: the body passes through untouched
    edge + access log      the same with the access log on (JSON lines to /dev/null)
    edge + Meta pixel      the Meta pixel injected, `rewrite_links = false`

Each careers-edge is `python -m proxy run --workers 1` with side_by_side's rules and
sinks loaded. "CPU µs/req" is the serving process's user + system CPU time per
request (best round): steadier than req/s on a shared machine. With `--baseline DIR` each careers-edge also runs from another checkout of
the package (e.g. `git worktree add /tmp/base HEAD~3`), as "NAME (base)", measured in
the same rounds: before and after in one run. With `--profile NAME` (a target's name), py-spy records that process
during its measurement (`--profile-out`, collapsed stacks; sum them per frame).

    python benchmarks/bench_passthrough.py [--duration 10] [--connections 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from side_by_side import (
    PAGE_PATH,
    PIXEL_ID,
    RULES,
    SNIPPET,
    SUB_FILTER,
    Target,
    start_nginx,
    start_origin,
    stop_all,
    wait_page,
    wrk,
)

from proxy.bench import free_port

SELF_SERVE = """import sys
import uvloop
from aiohttp import web

page = open(sys.argv[1], "rb").read()


async def handle(request):
    return web.Response(body=page, content_type="text/html")

app = web.Application()
app.router.add_get("/{tail:.*}", handle)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""

LEAN_PROXY = """import asyncio
import sys

import uvloop
from aiohttp import web

from proxy.http.transport import UpstreamPool


async def main(origin, port):
    pool = UpstreamPool(origin)

    async def handle(request):
        up = await pool.request(request.method, request.raw_path.encode(), [])
        try:
            body = await up.read()
        finally:
            up.release()
        return web.Response(body=body, status=up.status, content_type="text/html")

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()

uvloop.run(main(sys.argv[1], int(sys.argv[2])))
"""

# name -> (with the Meta pixel, access log)
EDGES = {
    "edge pass-through": (False, False),
    "edge + access log": (False, True),
    "edge + Meta pixel": (True, False),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def edge_rules(origin_url: str, tmp: Path, name: str, pixel: bool, access_log: bool) -> Path:
    slug = re.sub(r"\W+", "_", name).strip("_")
    (tmp / slug).mkdir()
    text = RULES.format(origin=origin_url, tmp=tmp / slug, pixel=PIXEL_ID)
    # The 0.1 key (deprecated, still read: `[log] access`): a --baseline checkout from
    # before [log] reads the same file.
    text = text.replace("workers = 1\n", "workers = 1\nrewrite_links = false\n"
                        f"access_log = {'true' if access_log else 'false'}\n")
    if not pixel:
        text = re.sub(r"\[pixels\.meta\].*?\n\n", "", text, flags=re.S)
    rules = tmp / f"{slug}.toml"
    rules.write_text(text)
    return rules


def start_edge(tmp: Path, origin_url: str, name: str, pixel: bool, access_log: bool,
               source: str | None = None) -> Target:
    rules = edge_rules(origin_url, tmp, name, pixel, access_log)
    port = free_port()
    # No admin listener: several proxies run at once and none is scraped. (The
    # variable, not the flag, so that an older baseline checkout starts too.)
    env = dict(os.environ, CAREERS_EDGE_ADMIN_LISTEN="off")
    if source:
        env["PYTHONPATH"] = source + os.pathsep + env.get("PYTHONPATH", "")
    with open(tmp / f"{rules.stem}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "run", "-c", str(rules), "--listen",
             f"127.0.0.1:{port}", "--workers", "1", "--log-level", "WARNING"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=log, env=env)
    return Target(name, f"http://127.0.0.1:{port}{PAGE_PATH}", proc, injects=pixel)


def start_all(tmp: Path, baseline: str | None) -> list[Target]:
    origin = start_origin(tmp)
    origin_url = origin.url.removesuffix(PAGE_PATH)
    origin_port = int(origin_url.rsplit(":", 1)[1])
    page = tmp / "www" / "job.html"
    port = free_port()
    targets = [origin, Target("nginx + sub_filter", f"http://127.0.0.1:{port}{PAGE_PATH}",
                              start_nginx(tmp, "subfilter", SUB_FILTER.format(
                                  tmp=tmp, port=port, origin=origin_port,
                                  snippet=SNIPPET.replace('"', '\\"'))), injects=True)]
    script = tmp / "self_serve.py"
    script.write_text(SELF_SERVE)
    port = free_port()
    targets.append(Target("aiohttp itself", f"http://127.0.0.1:{port}{PAGE_PATH}",
                          subprocess.Popen([sys.executable, str(script), str(page), str(port)]),
                          injects=False))
    script = tmp / "lean_proxy.py"
    script.write_text(LEAN_PROXY)
    port = free_port()
    targets.append(Target("lean proxy", f"http://127.0.0.1:{port}{PAGE_PATH}",
                          subprocess.Popen([sys.executable, str(script), origin_url, str(port)],
                                           env=dict(os.environ, PYTHONPATH=str(
                                               Path(__file__).resolve().parent.parent))),
                          injects=False))
    for name, (pixel, access_log) in EDGES.items():
        if baseline:
            targets.append(start_edge(tmp, origin_url, name + " (base)", pixel, access_log,
                                      source=str(Path(baseline).resolve())))
        targets.append(start_edge(tmp, origin_url, name, pixel, access_log))
    return targets


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rounds", type=int, default=1, help="measure each target N times, keep the best")
    p.add_argument("--only", action="append", default=[], help="measure only these targets")
    p.add_argument("--baseline", metavar="DIR",
                   help="also run each careers-edge from this checkout, as NAME (base)")
    p.add_argument("--profile", help="py-spy record this target during its measurement")
    p.add_argument("--profile-out", default="prof.txt")
    args = p.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="careers-edge-passthrough-") as name:
        tmp = Path(name)
        targets = start_all(tmp, args.baseline)
        try:
            for t in targets:
                body = wait_page(t)
                if t.injects and b"fbq('init'" not in body:
                    sys.exit(f"{t.name}: the page came back without the injected pixel")
                if not t.injects and b"fbq('init'" in body:
                    sys.exit(f"{t.name}: the page came back with a pixel")
            measured = [t for t in targets
                        if not args.only or t.name.removesuffix(" (base)") in args.only]
            for t in measured:
                wrk(t.url, 1, args.connections)          # warm-up
            cpu: dict[str, float] = {}
            for _ in range(args.rounds):
                for t in measured:
                    spy = None
                    if t.name == args.profile:
                        spy = subprocess.Popen(
                            [str(Path(sys.executable).with_name("py-spy")), "record",
                             "-p", str(t.proc.pid), "-d", str(max(1, round(args.duration) - 2)),
                             "-r", "250", "-f", "raw", "-o", args.profile_out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    cpu0 = cpu_seconds(t.proc.pid)
                    load = wrk(t.url, args.duration, args.connections)
                    used = cpu_seconds(t.proc.pid) - cpu0
                    if spy is not None:
                        spy.wait()
                    if load.requests:
                        per = used / load.requests * 1e6
                        cpu[t.name] = min(cpu.get(t.name, per), per)
                    if t.best is None or load.rps > t.best.rps:
                        t.best = load
        finally:
            stop_all(t.proc for t in targets)
    print(f"GET {PAGE_PATH}, wrk -t1 -c{args.connections} -d{args.duration:g}s, "
          f"best of {args.rounds} round(s)")
    print(f"{'':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU µs/req':>12}")
    for t in measured:
        b = t.best
        assert b is not None
        print(f"{t.name:<26}{b.rps:>9.0f}{b.p50_ms:>9.2f}{b.p99_ms:>9.2f}{b.errors:>8d}"
              f"{cpu.get(t.name, float('nan')):>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
