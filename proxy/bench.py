"""`careers-edge bench`: the demo site direct vs through the proxy, on this machine.

Three processes share no event loop: the demo site (`python -m proxy.bench site`),
the proxy (`python -m proxy run` with `rules/demo.toml`) and the load generator
(wrk when it is on PATH, else `python -m proxy.bench load`). The recorder standing
in for the ad networks runs in this process. The same job page is loaded directly
and then through the proxy; during the proxied run a few visitors land with click
ids and apply, and the bench waits until every conversion they fired is delivered.
Ratios compare the two runs of the same invocation: absolute figures drift between
machines and runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import aiohttp

PAGE_PATH = "/jobs/1"
APPLY_PATH = "/jobs/1/apply"
START_TIMEOUT = 20.0        # seconds for a child server to answer
DELIVERY_TIMEOUT = 30.0     # seconds for fired conversions to reach the recorder
WARMUP_REQUESTS = 200
OUTCOMES = ("queued", "sent", "retried", "dead", "deduped", "skipped", "suppressed")


@dataclass(frozen=True, slots=True)
class Load:
    """One load run's result."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


# --- load generators ---------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> Load:
    """wrk's report (run with --latency) as a `Load`."""
    def num(pattern: str, default: str = "0") -> str:
        m = re.search(pattern, out)
        return m.group(1) if m else default
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(num(r"Non-2xx or 3xx responses: (\d+)"))
    return Load(requests=int(num(r"(\d+) requests in")),
                rps=float(num(r"Requests/sec:\s+([\d.]+)")),
                p50_ms=_ms(num(r"\n\s+50%\s+(\S+)", "nan")),
                p99_ms=_ms(num(r"\n\s+99%\s+(\S+)", "nan")), errors=errors)


async def wrk_load(url: str, duration: float, connections: int, threads: int = 1) -> Load:
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--latency", url, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    return parse_wrk(out.decode(errors="replace"))


async def builtin_load(url: str, duration: float, connections: int) -> Load:
    """The aiohttp load generator, in its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.bench", "load", url, str(duration), str(connections),
        stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    return Load(**json.loads(out))


async def generate(url: str, duration: float, connections: int) -> Load:
    """GET `url` from `connections` keep-alive connections for `duration` seconds."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as session:
        async def worker() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < deadline:
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status >= 400:
                            errors += 1
                except (aiohttp.ClientError, OSError):
                    errors += 1
                latencies.append(time.perf_counter() - t0)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 \
            if latencies else float("nan")
    return Load(len(latencies), len(latencies) / elapsed, pct(0.50), pct(0.99), errors)


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "the built-in aiohttp load generator"


async def drive(url: str, duration: float, connections: int) -> Load:
    if shutil.which("wrk"):
        return await wrk_load(url, duration, connections)
    return await builtin_load(url, duration, connections)


# --- processes -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MB; NaN where /proc is absent."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def wait_ready(url: str, proc: asyncio.subprocess.Process, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {START_TIMEOUT:.0f} s")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def warm(url: str, count: int = WARMUP_REQUESTS) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(url) as resp:
                await resp.read()


# --- conversions -----------------------------------------------------------------------

async def apply_once(proxy_url: str) -> None:
    """A paid click that lands, opens the form and applies: 9 conversions in rules/demo.toml."""
    tag = uuid.uuid4().hex
    landing = (f"{proxy_url}{PAGE_PATH}?tlr_sid={uuid.uuid4()}"
               f"&fbclid=IwAR-bench-{tag[:12]}&ccuid=bench-{tag[12:20]}&ittk=bench{tag[20:28]}"
               f"&gclid=bench-{tag[:10]}&li_fat_id=bench-{tag[10:20]}&ttclid=bench-{tag[20:]}")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        for url in (landing, proxy_url + APPLY_PATH):
            async with s.get(url) as resp:
                await resp.read()
        form = {"job_title": "Senior Backend Engineer", "name": "Bench Visitor",
                "email": "bench@example.com"}
        async with s.post(proxy_url + APPLY_PATH, data=form, allow_redirects=False) as resp:
            if resp.status != 303:
                raise RuntimeError(f"application answered {resp.status}, expected 303")


async def applications(proxy_url: str, count: int, spread: float) -> None:
    for _ in range(count):
        await apply_once(proxy_url)
        await asyncio.sleep(spread / count)


async def conversion_counts(admin_url: str) -> dict[str, int]:
    """Conversions by outcome, from the metrics on the proxy's admin listener."""
    from prometheus_client.parser import text_string_to_metric_families
    async with aiohttp.ClientSession() as s, s.get(admin_url + "/_edge/metrics") as resp:
        text = await resp.text()
    counts = dict.fromkeys(OUTCOMES, 0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "edge_conversions_total":
                outcome = sample.labels.get("outcome", "")
                counts[outcome] = counts.get(outcome, 0) + int(sample.value)
    return counts


def received(recorder) -> int:
    """Conversions the recorder answered with 2xx (a batch counts its events)."""
    return sum(rec.events for rec in recorder.requests
               if rec.is_conversion and 200 <= rec.status < 300)


async def settle(admin_url: str, recorder) -> tuple[dict[str, int], int]:
    """Wait until every queued conversion is sent and received (or the timeout)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        counts = await conversion_counts(admin_url)
        got = received(recorder)
        done = counts["sent"] + counts["dead"] >= counts["queued"] and got >= counts["sent"]
        if done or time.monotonic() > deadline:
            return counts, got
        await asyncio.sleep(0.2)


# --- the run -----------------------------------------------------------------------------

def table(duration: float, connections: int, page_bytes: int, direct: Load, proxied: Load,
          rss: float, counts: dict[str, int], got: int) -> str:
    def row(name: str, load: Load, rss_text: str) -> str:
        return (f"{name:<16}{load.rps:>10.0f}{load.p50_ms:>10.2f}{load.p99_ms:>10.2f}"
                f"{load.errors:>8d}{rss_text:>12}")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b and not math.isnan(b) else "-"
    missing = counts["queued"] - got
    return "\n".join([
        (f"careers-edge bench: GET {PAGE_PATH} ({page_bytes / 1024:.1f} KB HTML), "
         f"{connections} connections, {duration:g} s each, load by {load_tool()}"),
        f"{'':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'peak RSS':>12}",
        row("direct (site)", direct, "-"),
        row("through proxy", proxied, f"{rss:.0f} MB"),
        (f"{'proxy/direct':<16}{ratio(proxied.rps, direct.rps):>10}"
         f"{ratio(proxied.p50_ms, direct.p50_ms):>10}{ratio(proxied.p99_ms, direct.p99_ms):>10}"),
        (f"conversions: fired {counts['queued']} (queued), delivered {counts['sent']} (sent), "
         f"received by the recorder {got}, retried {counts['retried']}, dead {counts['dead']}, "
         f"missing {max(0, missing)}"),
    ])


async def bench(duration: float, connections: int, work: Path, errlog: IO[bytes]) -> int:
    from proxy.demo.recorder import Recorder
    from proxy.demo.run import ENV_RECORDER, ENV_UPSTREAM, demo_rules
    from proxy.demo.site import serve

    recorder = Recorder()
    rec_runner, rec_url = await serve(lambda _url: recorder.build_app())
    site_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    site_url, proxy_url = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{proxy_port}"
    admin_url = f"http://127.0.0.1:{admin_port}"
    site = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.bench", "site", str(site_port),
        stdout=subprocess.DEVNULL)
    # The proxy measured is this installation's, whichever one the work directory sees.
    here = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, ENV_UPSTREAM: site_url, ENV_RECORDER: rec_url,
           "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "run", "-c", str(demo_rules()),
        "--listen", f"127.0.0.1:{proxy_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
        "--workers", "1", "--log-level", "WARNING",
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        await wait_ready(site_url + PAGE_PATH, site, "the demo site")
        await wait_ready(proxy_url + "/_edge/healthz", proxy, "the proxy")
        async with aiohttp.ClientSession() as s, s.get(site_url + PAGE_PATH) as resp:
            page_bytes = len(await resp.read())
        await warm(site_url + PAGE_PATH)
        direct = await drive(site_url + PAGE_PATH, duration, connections)
        await warm(proxy_url + PAGE_PATH)
        count = max(1, min(20, int(duration)))
        proxied, _ = await asyncio.gather(
            drive(proxy_url + PAGE_PATH, duration, connections),
            applications(proxy_url, count, duration * 0.8))
        counts, got = await settle(admin_url, recorder)
        rss = peak_rss_mb(proxy.pid)
    except RuntimeError as exc:
        errlog.flush()
        tail = (work / "proxy.log").read_text(errors="replace")[-2000:]
        print(f"careers-edge bench: {exc}\n{tail}", file=sys.stderr)
        return 1
    finally:
        await stop(proxy)
        await stop(site)
        await rec_runner.cleanup()
    print(table(duration, connections, page_bytes, direct, proxied, rss, counts, got))
    return 0 if got >= counts["queued"] else 1


def run_bench(duration: float = 10.0, connections: int = 50) -> int:
    from proxy.serve import install_uvloop
    install_uvloop()
    with tempfile.TemporaryDirectory(prefix="careers-edge-bench-") as work, \
            open(Path(work) / "proxy.log", "wb") as errlog:
        return asyncio.run(bench(duration, connections, Path(work), errlog))


# --- child processes -------------------------------------------------------------------

async def _serve_site(port: int) -> None:
    from proxy.demo.site import build_site, serve
    await serve(build_site, port=port)
    await asyncio.Event().wait()


def _child(argv: list[str]) -> int:
    from proxy.serve import install_uvloop
    install_uvloop()
    if argv[:1] == ["site"]:
        asyncio.run(_serve_site(int(argv[1])))
    elif argv[:1] == ["load"]:
        load = asyncio.run(generate(argv[1], float(argv[2]), int(argv[3])))
        print(json.dumps(asdict(load)))
    else:
        print("usage: python -m proxy.bench site PORT | load URL SECONDS CONNECTIONS",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
