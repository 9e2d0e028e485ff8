"""No conversion lost: the endpoint down, the proxy SIGKILLed and restarted on the same
state file, the endpoint back → delivered exactly once, with the event id it was fired with.

The proxy runs with `CAREERS_EDGE_BACKOFF_CAP` (no wait between attempts longer than
a second) and `CAREERS_EDGE_LEASE_SECONDS` (a dead process's claim expires in a few
seconds), so each story ends in seconds instead of the production schedule's minutes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.demo.recorder import RecordedRequest, Recorder
from proxy.demo.site import build_site, serve
from tests.integration.harness import free_port
from tests.integration.procs import (
    ProxyProcess,
    apply_rule,
    metric_value,
    running,
    spawn,
    write_rules,
)

SINK_TIMEOUT = 2        # seconds; the lease below must outlast it
ENV = {"CAREERS_EDGE_BACKOFF_CAP": "1", "CAREERS_EDGE_LEASE_SECONDS": "4"}
DELIVERY_WAIT = 30.0
QUIET = 2.0
RULES = apply_rule("ats") + f"""
[sinks.ats]
type = "webhook"
url = "{{recorder}}/hooks/ats"
secret = "whsec-durable"
timeout = {SINK_TIMEOUT}
"""
FORM = {"job_title": "Delivery Driver", "name": "Grace", "email": "grace@example.com"}


class Endpoint:
    """The recorder on a fixed port that can be stopped and started again."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.arrived = asyncio.Event()   # set as a request comes in, before any delay
        self.bodies: list[bytes] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = self.recorder.build_app()
        app.middlewares.insert(0, self._arrival)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _arrival(self, request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        self.bodies.append(await request.read())
        self.arrived.set()
        return await handler(request)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[str, Endpoint, Path]]:
    site_runner, upstream = await serve(build_site)
    endpoint = Endpoint()
    rules = write_rules(tmp_path, upstream, RULES, recorder=endpoint.url)
    try:
        yield upstream, endpoint, rules
    finally:
        await endpoint.stop()
        await site_runner.cleanup()


async def fire(p: ProxyProcess) -> None:
    async with aiohttp.ClientSession(p.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as c:
        async with c.get("/jobs/4") as r:
            assert r.status == 200
            await r.read()
        async with c.post("/jobs/4/apply", data=FORM, allow_redirects=False) as r:
            assert r.status == 303, await r.text()


async def counted(p: ProxyProcess, outcome: str, at_least: int) -> None:
    """Wait until this process's metrics count `outcome` for the sink `at_least` times."""
    for _ in range(int(DELIVERY_WAIT / 0.1)):
        text = await p.metrics()
        if metric_value(text, "edge_conversions_total", sink="ats",
                        outcome=outcome) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{outcome} never reached {at_least}:\n{p.stderr()}")


def delivered(r: RecordedRequest) -> bool:
    return r.network == "webhook" and r.status == 200


async def exactly_one_delivery(endpoint: Endpoint) -> dict:
    first = await endpoint.recorder.wait_for(delivered, timeout=DELIVERY_WAIT)
    await asyncio.sleep(QUIET)
    assert [r for r in endpoint.recorder.requests if delivered(r)] == [first]
    assert first.signature_valid("whsec-durable")
    return first.json()


def event_ids(bodies: list[bytes]) -> set[str]:
    import json
    return {json.loads(b)["event_id"] for b in bodies}


@pytest.mark.parametrize("outage", ["503", "refused"])
async def test_conversion_fired_while_endpoint_down_survives_sigkill(world, tmp_path,
                                                                      outage) -> None:
    _, endpoint, rules = world
    if outage == "503":
        endpoint.recorder.fail_next("/hooks/", status=503, times=1000)
        await endpoint.start()
    async with running(rules, tmp=tmp_path, env=ENV) as first:
        await fire(first)
        await counted(first, "retried", 2)          # tried, failed, scheduled again
        first.kill()                                # SIGKILL: no drain, no release
    async with running(rules, tmp=tmp_path, env=ENV) as second:
        await counted(second, "retried", 1)         # the restart took the row up again
        if outage == "503":
            endpoint.recorder.clear()               # the endpoint answers 200 again
        else:
            await endpoint.start()
        doc = await exactly_one_delivery(endpoint)
        await counted(second, "sent", 1)
    assert doc["event"] == "ApplicationCompleted" and doc["jobName"] == FORM["job_title"]
    # Every attempt, before and after the kill, carried the same event.
    assert event_ids(endpoint.bodies) == {doc["event_id"]}


async def test_delivery_in_flight_when_killed_is_sent_after_restart(world, tmp_path) -> None:
    _, endpoint, rules = world
    # The first attempt hangs at the endpoint; the proxy dies holding its claim.
    endpoint.recorder.fail_next("/hooks/", status=503, times=1, delay=SINK_TIMEOUT * 3)
    await endpoint.start()
    p = spawn(rules, tmp=tmp_path, env=ENV)
    try:
        await p.wait_healthy()
        await fire(p)
        await asyncio.wait_for(endpoint.arrived.wait(), DELIVERY_WAIT)
        p.send(signal.SIGKILL)
        await p.wait_exit()
    finally:
        p.kill()
    async with running(rules, tmp=tmp_path, env=ENV) as second:
        doc = await exactly_one_delivery(endpoint)
        await counted(second, "sent", 1)
    assert event_ids(endpoint.bodies) == {doc["event_id"]}
    assert len(endpoint.bodies) == 2            # the interrupted attempt and the delivery
