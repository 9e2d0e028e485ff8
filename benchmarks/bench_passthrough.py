"""The proxy's own cost per request, beside what an aiohttp front can reach at all.

The same ~4.8 KB job page as side_by_side.py, served by an nginx origin, loaded with
`wrk -t1 -cN -dSs` through each of:

    nginx direct           the origin itself
    nginx + sub_filter     as in side_by_side.py
    aiohttp itself         a 10-line aiohttp app (uvloop) answering with the page from
                           memory: the ceiling for any aiohttp front on this machine
    lean proxy             `lean_proxy.py`: aiohttp's low-level server fetching the
                           page through careers-edge's upstream pool, the script tag
                           put in with `bytes.replace`: no attribution, rules, header
                           filtering, metrics or log — the floor for a proxy on this stack
    stages floor           `floor_proxy.py`: the lean proxy plus careers-edge's own stage
                           functions called straight in its handler (attribution, rules,
                           headers, the page plan and template, the counts, the access
                           log), with the rules of "edge, all features" and no pipeline:
                           the floor that trimming the pipeline's glue could reach
    edge pass-through      careers-edge, no pixel, `rewrite_links = false`,
                           `access_log = false`: the body passes through untouched
    edge + access log      the same with the access log on (JSON lines to /dev/null)
    edge + Meta pixel      the Meta pixel injected, `rewrite_links = false`
    edge, all features     side_by_side.py's careers-edge: the Meta pixel, rules, link
                           rewriting and the access log (JSON lines to /dev/null)

The last lines give the full-featured edge's CPU per request × the lean proxy's (the
issue's target: ≤ 1.6), the stages floor's × the lean proxy's (what the stages
themselves cost) and the full-featured edge's × the stages floor's (the pipeline's
glue), then each stage of the request path in µs per request,
measured in this process without sockets (`stages.py`).

Each careers-edge is `python -m proxy run --workers 1` with side_by_side's rules and
sinks loaded. "CPU µs/req" is the serving process's user + system CPU time per
request (best round): steadier than req/s on a shared machine. With `--baseline DIR` each careers-edge also runs from another checkout of
the package (e.g. `git worktree add /tmp/base HEAD~3`), as "NAME (base)", measured in
the same rounds: before and after in one run. With `--profile NAME` (a target's name), py-spy records that process
during its measurement (`--profile-out`, collapsed stacks; sum them per frame).

    python benchmarks/bench_passthrough.py [--duration 10] [--connections 50] [--rounds 1]
                                           [--only NAME] [--stages-only]
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
    start_lean,
    start_nginx,
    start_origin,
    stop_all,
    wait_page,
    wrk,
)
from stages import print_stages

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

FULL = "edge, all features"
FLOOR = "stages floor"
FLOOR_PROXY = Path(__file__).with_name("floor_proxy.py")
TARGET_CPU = 1.6            # full-featured CPU per request × the lean proxy's, at most

# name -> (with the Meta pixel, access log, link rewriting)
EDGES = {
    "edge pass-through": (False, False, False),
    "edge + access log": (False, True, False),
    "edge + Meta pixel": (True, False, False),
    FULL: (True, True, True),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def edge_rules(origin_url: str, tmp: Path, name: str, pixel: bool, access_log: bool,
               links: bool) -> Path:
    slug = re.sub(r"\W+", "_", name).strip("_")
    (tmp / slug).mkdir()
    text = RULES.format(origin=origin_url, tmp=tmp / slug, pixel=PIXEL_ID)
    # The 0.1 key (deprecated, still read: `[log] access`): a --baseline checkout from
    # before [log] reads the same file.
    text = text.replace("workers = 1\n", f"workers = 1\nrewrite_links = {str(links).lower()}\n"
                        f"access_log = {'true' if access_log else 'false'}\n")
    if not pixel:
        text = re.sub(r"\[pixels\.meta\].*?\n\n", "", text, flags=re.S)
    rules = tmp / f"{slug}.toml"
    rules.write_text(text)
    return rules


def start_edge(tmp: Path, origin_url: str, name: str, pixel: bool, access_log: bool,
               links: bool, source: str | None = None) -> Target:
    rules = edge_rules(origin_url, tmp, name, pixel, access_log, links)
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


def start_floor(tmp: Path, origin_url: str) -> Target:
    """`floor_proxy.py` in front of `origin_url` with the rules of FULL, with this
    checkout's stages (started as `start_lean` starts the lean proxy)."""
    pixel, access_log, links = EDGES[FULL]
    rules = edge_rules(origin_url, tmp, FLOOR, pixel, access_log, links)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(FLOOR_PROXY.resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, str(FLOOR_PROXY), origin_url, str(port),
                             str(rules)], env=env)
    return Target(FLOOR, f"http://127.0.0.1:{port}{PAGE_PATH}", proc, injects=True)


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
    targets.append(start_lean(origin_url))
    targets.append(start_floor(tmp, origin_url))
    for name, (pixel, access_log, links) in EDGES.items():
        if baseline:
            targets.append(start_edge(tmp, origin_url, name + " (base)", pixel, access_log,
                                      links, source=str(Path(baseline).resolve())))
        targets.append(start_edge(tmp, origin_url, name, pixel, access_log, links))
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
    p.add_argument("--stages-only", action="store_true",
                   help="only the in-process stage listing (no sockets, no wrk)")
    args = p.parse_args()
    if args.stages_only:
        print_stages()
        return 0
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
    lean = cpu.get("lean proxy")
    for name in (FULL + " (base)", FULL):
        if lean and name in cpu:
            ratio = cpu[name] / lean
            verdict = "met" if ratio <= TARGET_CPU else "NOT met"
            print(f"{name}: CPU per request × lean proxy {ratio:.2f} "
                  f"(target ≤ {TARGET_CPU:.1f}: {verdict})")
    floor = cpu.get(FLOOR)
    if lean and floor:
        print(f"{FLOOR}: CPU per request × lean proxy {floor / lean:.2f}")
    if floor and FULL in cpu:
        print(f"{FULL} × {FLOOR} {cpu[FULL] / floor:.2f}")
    print()
    print_stages()
    return 0


if __name__ == "__main__":
    sys.exit(main())
