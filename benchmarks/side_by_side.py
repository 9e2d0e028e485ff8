"""careers-edge beside nginx + sub_filter (and mitmproxy), one run on one machine.

The same ~4.8 KB job page from the demo site, saved as a static file, is served by an
nginx origin and loaded with `wrk -t1 -cN -dSs` through each of:

    nginx direct          the origin itself (the ceiling)
    nginx + sub_filter    proxy_pass + sub_filter '</head>' with one script tag
                          (one worker, sub_filter_once on, upstream compression off,
                          keep-alive upstream pool)
    lean proxy            `lean_proxy.py`: aiohttp's low-level server, careers-edge's
                          upstream pool and `bytes.replace` of the same tag, nothing
                          else: the floor for a proxy on this stack
    careers-edge          `python -m proxy run --workers 1` with the Meta pixel, the
                          demo's rules and sinks loaded, link rewriting on (default);
                          wrk sends no cookies, so every request is a new visitor
                          (a `linksClickedId` and `_fbp` minted each time)
    careers-edge,         the same process, each request with the cookies a visitor
      returning           has after their first page (`linksClickedId`, `_fbp`)
    mitmproxy             `mitmdump --mode reverse:URL` with an injection addon,
                          when mitmdump is installed

Everything runs as the current user on loopback ports; nginx configs, pid files, logs
and the proxy's state go to a temporary directory. Both proxies write an access log
(nginx to a buffered file, careers-edge its JSON lines to /dev/null). Each target is
warmed up for 1 s first; with `--rounds N` the targets are measured in turn N times
and the best round of each is kept (the machine may be shared). Ratios are to
nginx + sub_filter in the same run; the last lines read careers-edge against the lean
proxy (the issue's target: ≥ 0.60), nginx + sub_filter and mitmproxy. Absolute
figures drift between machines and runs.

    python benchmarks/side_by_side.py [--duration 10] [--connections 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.bench import Load, free_port, parse_wrk, peak_rss_mb
from proxy.demo.jobs import job_by_id
from proxy.demo.pages import job_page
from proxy.pixels import META_BASE

PIXEL_ID = "123456789012345"
NONCE = "c2lkZS1ieS1zaWRlLW5vbmNl"
CSP = (f"default-src 'self'; script-src 'self' 'nonce-{NONCE}'; img-src 'self' data:; "
       "base-uri 'self'; form-action 'self'")
SNIPPET = (f"<script>{META_BASE}fbq('init','{PIXEL_ID}');"
           "fbq('track','PageView');</script>")
PAGE_PATH = "/jobs/1"
RETURNING = ("Cookie: linksClickedId=4f1c2a9e8b7d4c3f9a1b2c3d4e5f6a7b; "
             "_fbp=fb.1.1763800000000.1234567890")
TARGET_RATIO = 0.60     # careers-edge req/s vs the lean proxy (the target)
LEAN_PROXY = Path(__file__).with_name("lean_proxy.py")

NGINX_MAIN = """worker_processes 1;
daemon off;
master_process off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {tmp}/{name}-body;
    proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fastcgi;
    uwsgi_temp_path {tmp}/{name}-uwsgi;
    scgi_temp_path {tmp}/{name}-scgi;
    keepalive_requests 1000000;
{body}
}}
"""

ORIGIN = """    access_log off;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{
            default_type text/html;
            add_header Content-Security-Policy "{csp}" always;
            try_files /job.html =404;
        }}
    }}"""

SUB_FILTER = """    access_log {tmp}/subfilter.access.log combined buffer=64k flush=1s;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Accept-Encoding "";
            sub_filter '</head>' "{snippet}</head>";
            sub_filter_once on;
        }}
    }}"""

RULES = """[proxy]
upstream = "{origin}"
state = "sqlite:///{tmp}/edge.db"
workers = 1

[pixels.meta]
type = "meta"
pixel_id = "{pixel}"
paths = ["/**"]

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{{job_id}}/apply"
status = [200]
job_name = "css:h1"
send_to = ["meta"]

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{{job_id}}/apply"
status = [302, 303]
location = "/jobs/*/thanks*"
job_name = "form:job_title"
send_to = ["talroo", "meta"]

[sinks.talroo]
type = "talroo"
url = "http://127.0.0.1:9/conversion2.php"

[sinks.meta]
type = "meta"
pixel_id = "{pixel}"
access_token = "bench"
api = "http://127.0.0.1:9/v21.0"
event_names = {{ ApplicationCompleted = "SubmitApplication" }}
"""

MITM_ADDON = """from mitmproxy import http

SNIPPET = {snippet!r}.encode()


def response(flow: http.HTTPFlow) -> None:
    if "text/html" in flow.response.headers.get("content-type", ""):
        flow.response.content = flow.response.content.replace(
            b"</head>", SNIPPET + b"</head>", 1)
"""


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    injects: bool
    best: Load | None = None
    headers: tuple[str, ...] = ()
    admin_url: str = ""          # careers-edge's admin listener (metrics)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if not found:
        sys.exit("nginx is not installed (Debian: apt-get install nginx)")
    return found


def start_nginx(tmp: Path, name: str, body: str) -> subprocess.Popen[bytes]:
    conf = tmp / f"{name}.conf"
    conf.write_text(NGINX_MAIN.format(tmp=tmp, name=name, body=body))
    return subprocess.Popen([nginx_binary(), "-p", str(tmp), "-c", str(conf),
                             "-e", str(tmp / f"{name}.error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_page(target: Target, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            sys.exit(f"{target.name} exited with status {target.proc.returncode}")
        try:
            with urllib.request.urlopen(target.url, timeout=2) as resp:
                return resp.read()
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    sys.exit(f"{target.name} did not answer {target.url} within {timeout:.0f} s")


def wrk(url: str, duration: float, connections: int, headers: tuple[str, ...] = ()) -> Load:
    extra = [arg for h in headers for arg in ("-H", h)]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         *extra, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def start_origin(tmp: Path) -> Target:
    """nginx serving the demo's job page (absolute links naming this origin) on any path."""
    www = tmp / "www"
    www.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    job = job_by_id("1")
    assert job is not None
    (www / "job.html").write_text(job_page(url, job, NONCE))
    return Target("nginx direct", url + PAGE_PATH, start_nginx(
        tmp, "origin", ORIGIN.format(port=port, www=www, csp=CSP)), injects=False)


def start_edge(tmp: Path, origin_url: str, workers: int = 1) -> Target:
    """careers-edge in front of `origin_url` with the Meta pixel and rules: one process,
    or a supervisor forking `workers`."""
    port, admin = free_port(), free_port()
    rules = tmp / "rules.toml"
    rules.write_text(RULES.format(origin=origin_url, tmp=tmp, pixel=PIXEL_ID))
    with open(tmp / "edge.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "run", "-c", str(rules), "--listen",
             f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--workers", str(workers),
             "--log-level", "WARNING"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
    return Target("careers-edge", f"http://127.0.0.1:{port}{PAGE_PATH}", proc, injects=True,
                  admin_url=f"http://127.0.0.1:{admin}")


def start_lean(origin_url: str) -> Target:
    """`lean_proxy.py` in front of `origin_url`, with this checkout's upstream pool."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(LEAN_PROXY.resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, str(LEAN_PROXY), origin_url, str(port), SNIPPET],
                            env=env)
    return Target("lean proxy", f"http://127.0.0.1:{port}{PAGE_PATH}", proc, injects=True)


def start_all(tmp: Path) -> list[Target]:
    origin = start_origin(tmp)
    origin_url = origin.url.removesuffix(PAGE_PATH)
    origin_port = int(origin_url.rsplit(":", 1)[1])
    port = free_port()
    targets = [origin, Target("nginx + sub_filter", f"http://127.0.0.1:{port}{PAGE_PATH}",
                              start_nginx(tmp, "subfilter", SUB_FILTER.format(
                                  tmp=tmp, port=port, origin=origin_port,
                                  snippet=SNIPPET.replace('"', '\\"'))), injects=True),
               start_lean(origin_url), start_edge(tmp, origin_url)]
    edge = targets[-1]
    targets.append(Target("careers-edge, returning", edge.url, edge.proc, injects=True,
                          headers=(RETURNING,)))
    mitmdump = shutil.which("mitmdump")
    if mitmdump:
        port = free_port()
        addon = tmp / "inject_addon.py"
        addon.write_text(MITM_ADDON.format(snippet=SNIPPET))
        proc = subprocess.Popen(
            [mitmdump, "-q", "--mode", f"reverse:{origin_url}", "--listen-host", "127.0.0.1",
             "--listen-port", str(port), "-s", str(addon)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets.append(Target("mitmproxy", f"http://127.0.0.1:{port}{PAGE_PATH}", proc,
                              injects=True))
    return targets


def report(targets: list[Target], edge_rss: float, page_bytes: int, args: argparse.Namespace,
           mitm_missing: bool) -> str:
    base = next(t.best for t in targets if t.name == "nginx + sub_filter")
    assert base is not None

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"
    lines = [
        (f"GET {PAGE_PATH} ({page_bytes / 1024:.1f} KB HTML), wrk -t1 -c{args.connections} "
        f"-d{args.duration:g}s, best of {args.rounds} round(s); ratios to nginx + sub_filter"),
        (f"{'':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'req/s ×':>9}{'p50 ×':>8}{'p99 ×':>8}"),
    ]
    for t in targets:
        b = t.best
        assert b is not None
        lines.append(f"{t.name:<24}{b.rps:>9.0f}{b.p50_ms:>9.2f}{b.p99_ms:>9.2f}{b.errors:>8d}"
                     f"{ratio(b.rps, base.rps):>9}{ratio(b.p50_ms, base.p50_ms):>8}"
                     f"{ratio(b.p99_ms, base.p99_ms):>8}")
    if mitm_missing:
        lines.append(f"{'mitmproxy':<24}  skipped: mitmdump is not installed "
                     "(pip install mitmproxy)")
    best = {t.name: t.best for t in targets}
    edge, lean = best["careers-edge"], best["lean proxy"]
    assert edge is not None and lean is not None
    share = edge.rps / lean.rps if lean.rps else 0.0
    verdict = "met" if share >= TARGET_RATIO else "NOT met"
    beside = [f"× nginx + sub_filter {edge.rps / base.rps:.2f}" if base.rps else ""]
    mitm = best.get("mitmproxy")
    if mitm is not None and mitm.rps:
        beside.append(f"× mitmproxy {edge.rps / mitm.rps:.2f}")
    lines.append(f"careers-edge (pixel, rules, link rewriting, access log; new visitors) "
                 f"req/s × lean proxy {share:.2f} (target ≥ {TARGET_RATIO:.2f}: {verdict}); "
                 + ", ".join(b for b in beside if b))
    lines.append(f"careers-edge peak RSS {edge_rss:.0f} MB")
    return "\n".join(lines)


def stop_all(procs: Iterable[subprocess.Popen]) -> None:
    """Terminate every process, then wait for each (killing one that hangs)."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rounds", type=int, default=1, help="measure each target N times, keep the best")
    args = p.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="careers-edge-side-by-side-") as name:
        tmp = Path(name)
        targets = start_all(tmp)
        try:
            page_bytes = 0
            for t in targets:
                body = wait_page(t)
                if t.name == "nginx direct":
                    page_bytes = len(body)
                if t.injects and b"fbq('init'" not in body:
                    sys.exit(f"{t.name}: the page came back without the injected pixel")
                wrk(t.url, 1, args.connections, t.headers)          # warm-up
            for _ in range(args.rounds):
                for t in targets:
                    load = wrk(t.url, args.duration, args.connections, t.headers)
                    if t.best is None or load.rps > t.best.rps:
                        t.best = load
            edge_rss = peak_rss_mb(next(t.proc.pid for t in targets if t.name == "careers-edge"))
        finally:
            stop_all({t.proc for t in targets})
        print(report(targets, edge_rss, page_bytes, args, mitm_missing=not shutil.which("mitmdump")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
