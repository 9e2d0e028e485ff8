"""What operators rely on, against a real `careers-edge run` process.

- Every metric the Grafana dashboard and the alert rules under deploy/ query is in
  the process's metrics once it has seen traffic (a landing click, a bad click id, an
  injected page, an application delivered to a sink, a broken upstream, a reload).
- The whole-request histogram counts every request, the outbox reports its oldest
  pending conversion, the build is named, and the process metrics cover every worker
  of `--workers 2` (prometheus-client's multiprocess mode cannot add those up).
- `careers-edge healthcheck -c RULES` exits 0 while the proxy serves, 1 once it is gone.
- deploy/compose/lb.conf, run by a real nginx in front of two real proxies, spreads
  visitors over both and passes WebSockets and applications through.
"""

from __future__ import annotations

import asyncio
import platform
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from proxy import __version__
from proxy.demo.recorder import Recorder
from tests.conftest import need_binary
from tests.deploy_files import DEPLOY, queried_metrics
from tests.integration.harness import free_port, start
from tests.integration.procs import (
    ProxyProcess,
    apply_rule,
    metric_value,
    run_cli,
    running,
    write_rules,
)

PAGE = b"<!doctype html><html><head><title>Jobs</title></head><body><h1>Jobs</h1></body></html>"
RULES = apply_rule("ats") + """
[pixels.marker]
type = "html"
html = "<meta name=injected>"

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-operations"
"""
TIMEOUT = aiohttp.ClientTimeout(total=20)


def upstream_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def apply(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPSeeOther(f"/jobs/{request.match_info['job']}/thanks")

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(f"echo {msg.data}")
        return ws

    async def broken(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()           # no answer at all: the proxy answers 502
        return web.Response()

    app = web.Application()
    app.router.add_get("/broken", broken)
    app.router.add_get("/ws", echo)
    app.router.add_post("/jobs/{job}/apply", apply)
    app.router.add_get("/{tail:.*}", page)
    return app


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[str, Recorder, Path]]:
    up_runner, up_port = await start(upstream_app())
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rules = write_rules(tmp_path, f"http://127.0.0.1:{up_port}", RULES,
                        recorder=f"http://127.0.0.1:{rec_port}")
    try:
        yield f"http://127.0.0.1:{up_port}", recorder, rules
    finally:
        await rec_runner.cleanup()
        await up_runner.cleanup()


async def scrape(p: ProxyProcess) -> str:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(p.metrics_url) as r:
        assert r.status == 200
        return await r.text()


def samples(text: str) -> dict[str, list]:
    """Sample name -> its samples (a histogram's _bucket, _sum and _count apart)."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def visit(p: ProxyProcess) -> None:
    """A landing click, a forged click id, a page, an application, a broken upstream."""
    async with aiohttp.ClientSession(base_url=p.url, timeout=TIMEOUT) as http:
        for path in (f"/jobs/7?tlr_sid={uuid.uuid4()}", "/jobs/7?tlr_sid=not-a-uuid"):
            async with http.get(path) as r:
                assert r.status == 200 and b"<meta name=injected>" in await r.read()
        async with http.post("/jobs/7/apply", data={"job_title": "Welder"},
                             allow_redirects=False) as r:
            assert r.status == 303
        async with http.get("/broken") as r:
            assert r.status == 502


async def test_every_metric_the_dashboard_and_alerts_query_is_exported(stack) -> None:
    _, recorder, rules = stack
    async with running(rules, tmp=rules.parent) as p:
        await visit(p)
        await recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        p.send(signal.SIGHUP)
        await p.wait_log("rules reloaded")
        exported = samples(await scrape(p))
    missing = {name: where for name, where in queried_metrics().items() if name not in exported}
    assert missing == {}, f"queried but not exported: {missing}"


async def test_request_duration_counts_every_request_and_the_build_is_named(stack) -> None:
    _, recorder, rules = stack
    async with running(rules, tmp=rules.parent) as p:
        await visit(p)
        text = await scrape(p)
    requests = sum(s.value for s in samples(text)["edge_requests_total"])
    assert requests >= 5                     # the healthz polls of the start count too
    assert metric_value(text, "edge_request_duration_seconds_count") == requests
    buckets = samples(text)["edge_request_duration_seconds_bucket"]
    assert max(s.value for s in buckets) == requests      # le="+Inf" holds them all
    assert metric_value(text, "edge_build_info", version=__version__,
                        python=platform.python_version(), aiohttp=aiohttp.__version__) == 1


async def test_the_oldest_pending_conversion_is_reported_while_the_sink_is_down(stack) -> None:
    _, recorder, rules = stack
    recorder.fail_next("/hooks/", status=503, times=1000)
    async with running(rules, tmp=rules.parent) as p:
        async with aiohttp.ClientSession(base_url=p.url, timeout=TIMEOUT) as http:
            async with http.post("/jobs/7/apply", data={"job_title": "Welder"},
                                 allow_redirects=False) as r:
                assert r.status == 303
        await asyncio.sleep(1.5)
        text = await scrape(p)
    assert metric_value(text, "edge_outbox_pending") == 1
    assert metric_value(text, "edge_outbox_oldest_seconds") >= 1


async def test_process_metrics_cover_every_worker(stack) -> None:
    _, recorder, rules = stack
    async with running(rules, tmp=rules.parent, workers=2) as p:
        await p.wait_log(lambda t: "worker 0 serving" in t and "worker 1 serving" in t)
        workers = {c.pid for c in psutil.Process(p.pid).children()}
        text = await scrape(p)
    assert len(workers) == 2
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_open_fds"):
        series = samples(text)[name]
        assert {int(s.labels["pid"]) for s in series} == workers, name
        assert all(s.value > 0 for s in series)
    (build,) = samples(text)["edge_build_info"]
    assert build.labels["version"] == __version__


async def healthcheck(rules: Path) -> subprocess.CompletedProcess[str]:
    return await run_cli("healthcheck", "-c", str(rules), cwd=rules.parent)


async def test_healthcheck_asks_the_admin_listener_and_fails_once_the_proxy_is_gone(
        stack) -> None:
    _, _, rules = stack
    admin = free_port()
    # The file's admin address, a wildcard: asked on loopback.
    rules.write_text(rules.read_text() + f'\n[admin]\nlisten = "0.0.0.0:{admin}"\n')
    async with running(rules, tmp=rules.parent,
                       args=("--admin-listen", f"127.0.0.1:{admin}")) as p:
        healthy = await healthcheck(rules)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        p.send(signal.SIGTERM)
        assert await p.wait_exit() == 0
    gone = await healthcheck(rules)
    assert gone.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{admin}/_edge/healthz" in gone.stdout
    broken = rules.parent / "broken.toml"
    broken.write_text("[proxy]\nlisten = 8080\n")
    invalid = await healthcheck(broken)
    assert invalid.returncode == 1 and "proxy.listen" in invalid.stderr


async def test_healthcheck_asks_the_public_listener_when_the_admin_one_is_off(stack) -> None:
    _, _, rules = stack
    port = free_port()
    text = rules.read_text().replace("[proxy]\n", f'[proxy]\nlisten = "0.0.0.0:{port}"\n')
    rules.write_text(text + '\n[admin]\nlisten = "off"\n')
    async with running(rules, tmp=rules.parent, port=port, args=("--admin-listen", "off")):
        healthy = await healthcheck(rules)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    gone = await healthcheck(rules)
    assert gone.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{port}/_edge/healthz" in gone.stdout


NGINX_MAIN = """daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
{lb}
}}
"""


async def wait_port(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        for _ in range(200):
            assert proc.poll() is None, "nginx exited"
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(url)


async def test_the_compose_balancer_spreads_visitors_over_both_proxies(stack) -> None:
    nginx = need_binary("nginx")
    _, recorder, rules = stack
    tmp = rules.parent
    async with running(rules, tmp=tmp, name="edge-a") as a, \
            running(rules, tmp=tmp, name="edge-b") as b:
        port = free_port()
        lb = (DEPLOY / "compose" / "lb.conf").read_text()
        lb = lb.replace("edge-a:8080", f"127.0.0.1:{a.port}").replace(
            "edge-b:8080", f"127.0.0.1:{b.port}")
        lb, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", lb)
        assert n == 1
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_MAIN.format(tmp=tmp, lb=lb))
        proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf), "-e",
                                 str(tmp / "nginx.error.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_port(f"{base}/_edge/healthz", proc)
            before = [metric_value(await scrape(p), "edge_requests_total", code="200")
                      for p in (a, b)]
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(base, connector=connector, timeout=TIMEOUT) as http:
                for _ in range(10):
                    async with http.get("/jobs/7") as r:
                        assert r.status == 200 and b"<meta name=injected>" in await r.read()
                async with http.ws_connect("/ws") as ws:
                    await ws.send_str("hello")
                    assert (await ws.receive(timeout=10)).data == "echo hello"
                async with http.post("/jobs/7/apply", data={"job_title": "Welder"},
                                     allow_redirects=False) as r:
                    assert r.status == 303
            after = [metric_value(await scrape(p), "edge_requests_total", code="200")
                     for p in (a, b)]
            # Delivered while the proxies run: one stopped first keeps it for its restart.
            delivery = await recorder.wait_for(lambda r: r.network == "webhook", timeout=30)
        finally:
            proc.terminate()
            proc.wait(10)
    served = [x - y for x, y in zip(after, before)]
    assert all(n >= 3 for n in served), f"pages served by each proxy: {served}"
    assert delivery.json()["event"] == "ApplicationCompleted"
