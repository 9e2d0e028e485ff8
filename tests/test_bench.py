"""`careers-edge bench`: the table it prints, wrk's report parsing, the built-in load generator."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

from aiohttp import web

from proxy.bench import generate, parse_wrk, run_bench

WRK_REPORT = """Running 5s test @ http://127.0.0.1:18080/jobs/1
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   109.44ms   43.87ms   1.08s    74.29%
    Req/Sec   459.39    159.55   838.00     67.35%
  Latency Distribution
     50%   97.02ms
     75%  122.68ms
     90%  176.98ms
     99%    1.20s
  2278 requests in 5.03s, 15.41MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    452.75
Transfer/sec:      3.06MB
"""


def test_parse_wrk_reads_rate_percentiles_and_every_error_kind() -> None:
    load = parse_wrk(WRK_REPORT)
    assert load.requests == 2278
    assert load.rps == 452.75
    assert load.p50_ms == 97.02
    assert load.p99_ms == 1200.0
    assert load.errors == 3 + 1 + 2 + 4


def test_parse_wrk_without_errors_or_latency_lines() -> None:
    load = parse_wrk("  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n")
    assert (load.requests, load.rps, load.errors) == (10, 10.0, 0)
    assert math.isnan(load.p50_ms) and math.isnan(load.p99_ms)


async def test_builtin_generator_counts_requests_and_errors(aiohttp_server) -> None:
    seen = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        return web.Response(text="<html></html>", content_type="text/html",
                            status=500 if seen % 2 else 200)

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    load = await generate(str(server.make_url("/")), 0.3, 3)
    assert load.requests == seen > 0
    assert load.errors == (seen + 1) // 2
    assert 0 < load.p50_ms <= load.p99_ms


def test_bench_runs_end_to_end_and_loses_no_conversion(capsys, monkeypatch) -> None:
    # The bench's proxy and site are child processes: they run this checkout's code.
    repo = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    policy = asyncio.get_event_loop_policy()
    try:
        status = run_bench(duration=1, connections=4)
    finally:
        asyncio.set_event_loop_policy(policy)
    out = capsys.readouterr().out
    assert status == 0, out
    lines = out.splitlines()
    assert any(line.startswith("direct (site)") for line in lines)
    through = next(line for line in lines if line.startswith("through proxy"))
    assert through.rstrip().endswith("MB")
    conversions = next(line for line in lines if line.startswith("conversions:"))
    # One visitor applies: ConversationStart to meta, ApplicationCompleted to eight sinks.
    assert "fired 9 (queued)" in conversions
    assert "received by the recorder 9" in conversions
    assert conversions.endswith("missing 0")
