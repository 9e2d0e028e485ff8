"""`careers-edge run --workers 2`: both workers serve, and conversions stay exactly-once.

Each client connection is traced to the worker process that accepted it (psutil
reads the workers' sockets), so "another worker" is a fact, not a likelihood.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import psutil
import pytest

from proxy.demo.recorder import Recorder
from proxy.demo.site import build_site, serve
from tests.integration.harness import free_port, start
from tests.integration.procs import ProxyProcess, apply_rule, metric_value, running, write_rules

WORKERS = 2
LANES = 12              # connections opened; both workers get some (kernel hash per 4-tuple)
TIMEOUT = aiohttp.ClientTimeout(total=20)
QUIET = 2.0             # seconds to wait for a second delivery that must not come
RULES = apply_rule("ats") + """
[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-workers"
"""
FORM = {"job_title": "Warehouse Associate", "name": "Ada", "email": "ada@example.com"}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[ProxyProcess, Recorder]]:
    site_runner, upstream = await serve(build_site)
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rules = write_rules(tmp_path, upstream, RULES, recorder=f"http://127.0.0.1:{rec_port}")
    try:
        async with running(rules, tmp=tmp_path, workers=WORKERS) as p:
            await p.wait_log(lambda t: all(f"worker {i} serving" in t for i in range(WORKERS)))
            yield p, recorder
    finally:
        await rec_runner.cleanup()
        await site_runner.cleanup()


def worker_pids(p: ProxyProcess) -> list[int]:
    return [c.pid for c in psutil.Process(p.pid).children()]


def owner_of(p: ProxyProcess, client_port: int) -> int:
    """The worker PID holding the accepted end of the client's connection."""
    for pid in worker_pids(p):
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == p.port and c.raddr and c.raddr.port == client_port:
                return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


class Lane:
    """One keep-alive connection to the proxy, its worker known; the cookie jar is shared."""

    def __init__(self, session: aiohttp.ClientSession, worker: int) -> None:
        self.session, self.worker = session, worker


async def open_lanes(p: ProxyProcess, jar: aiohttp.CookieJar, stack: AsyncExitStack,
                     n: int) -> list[Lane]:
    lanes = []
    for _ in range(n):
        # The client end's port is chosen here, so the accepted socket can be found.
        client_port = free_port()
        s = await stack.enter_async_context(aiohttp.ClientSession(
            p.url, cookie_jar=jar, timeout=TIMEOUT, connector=aiohttp.TCPConnector(
                limit=1, local_addr=("127.0.0.1", client_port))))
        async with s.get("/jobs/2") as r:
            assert r.status == 200
            await r.read()
        lanes.append(Lane(s, owner_of(p, client_port)))
    return lanes


async def apply(lane: Lane) -> None:
    async with lane.session.post("/jobs/2/apply", data=FORM, allow_redirects=False) as r:
        assert r.status == 303, await r.text()


def is_delivery(r) -> bool:
    return r.network == "webhook" and r.status == 200


async def test_both_workers_serve_and_one_application_is_delivered_once(setup) -> None:
    p, recorder = setup
    pids = worker_pids(p)
    assert len(pids) == WORKERS
    async with AsyncExitStack() as stack:
        lanes = await open_lanes(p, aiohttp.CookieJar(unsafe=True), stack, LANES)
        assert {lane.worker for lane in lanes} == set(pids), "one worker served everything"
        await apply(lanes[0])
    first = await recorder.wait_for(is_delivery, timeout=15)
    await asyncio.sleep(QUIET)
    deliveries = [r for r in recorder.requests if r.network == "webhook"]
    assert len(deliveries) == 1, [r.json() for r in deliveries]
    body = first.json()
    assert body["event"] == "ApplicationCompleted" and body["jobName"] == FORM["job_title"]
    assert first.signature_valid("whsec-workers")


async def test_dedupe_holds_across_workers(setup) -> None:
    p, recorder = setup
    async with AsyncExitStack() as stack:
        jar = aiohttp.CookieJar(unsafe=True)
        lanes = await open_lanes(p, jar, stack, LANES)
        visitor = {c.key: c.value for c in jar}
        assert "linksClickedId" in visitor
        by_worker = {lane.worker: lane for lane in lanes}
        assert len(by_worker) == WORKERS
        # The same visitor applies to the same job through each worker in turn.
        for lane in by_worker.values():
            await apply(lane)
        assert {c.key: c.value for c in jar}["linksClickedId"] == visitor["linksClickedId"]
    first = await recorder.wait_for(is_delivery, timeout=15)
    await asyncio.sleep(QUIET)
    deliveries = [r for r in recorder.requests if r.network == "webhook"]
    assert len(deliveries) == 1, [r.json() for r in deliveries]
    assert first.json()["linksClickedId"] == visitor["linksClickedId"]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if all(gone(pid) for pid in pids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still running: {[pid for pid in pids if not gone(pid)]}")


async def test_sigterm_stops_every_worker_and_exits_zero(setup) -> None:
    p, _ = setup
    pids = worker_pids(p)
    p.send(signal.SIGTERM)
    assert await p.wait_exit() == 0
    await wait_gone(pids)


async def test_workers_die_with_a_killed_supervisor(setup) -> None:
    p, _ = setup
    pids = worker_pids(p)
    assert len(pids) == WORKERS
    os.kill(p.pid, signal.SIGKILL)          # the supervisor only, not its process group
    await p.wait_exit()
    await wait_gone(pids)                  # no orphan keeps serving the port


def writers_of(pid: int) -> list[int]:
    """The outbox writer processes a worker started."""
    return [c.pid for c in psutil.Process(pid).children()
            if "proxy.writer_process" in c.cmdline()]


async def test_each_worker_has_its_own_writer_and_it_ends_with_the_worker(setup) -> None:
    p, _ = setup
    pids = worker_pids(p)
    writers = [writers_of(pid) for pid in pids]
    assert [len(w) for w in writers] == [1] * WORKERS
    os.kill(p.pid, signal.SIGKILL)          # the workers die with it, their writers on EOF
    await p.wait_exit()
    await wait_gone(pids + [w[0] for w in writers])


async def test_a_dead_worker_is_replaced(setup) -> None:
    p, _ = setup
    before = worker_pids(p)
    os.kill(before[0], signal.SIGKILL)
    await p.wait_log("restarting")
    for _ in range(200):
        now = worker_pids(p)
        if len(now) == WORKERS and before[0] not in now:
            break
        await asyncio.sleep(0.05)
    assert len(now) == WORKERS and before[1] in now and before[0] not in now
    await p.wait_log(lambda t: t.count("serving on") == WORKERS + 1)
    seen: set[int] = set()
    async with AsyncExitStack() as stack:
        # The kernel spreads connections by a hash: more lanes until each worker had one.
        for _ in range(4):
            lanes = await open_lanes(p, aiohttp.CookieJar(unsafe=True), stack, LANES)
            seen |= {lane.worker for lane in lanes}
            if seen == set(now):
                break
    assert seen == set(now)


async def test_metrics_add_up_every_worker(setup) -> None:
    """Each scrape is answered by one worker, yet counts the requests all of them served."""
    p, _recorder = setup
    served = 0
    for _ in range(LANES):          # new connections: the kernel spreads them over workers
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            async with s.get(f"{p.url}/jobs") as r:
                assert r.status == 200
                served += 1
    assert metric_value(await p.metrics(), "edge_requests_total", code="200") >= served


def pages_counted(text: str) -> float:
    return sum(metric_value(text, "edge_page_templates_total", result=r) for r in ("hit", "miss"))


async def test_component_tallies_add_up_every_worker(setup) -> None:
    """Counts a component keeps itself (page templates hit or missed) reach a scrape
    from every worker, not only from the one that answers it."""
    p, _recorder = setup
    async with AsyncExitStack() as stack:
        lanes: list[Lane] = []
        for _ in range(4):          # more lanes until each worker had one
            lanes += await open_lanes(p, aiohttp.CookieJar(unsafe=True), stack, LANES)
            if {lane.worker for lane in lanes} == set(worker_pids(p)):
                break
        assert {lane.worker for lane in lanes} == set(worker_pids(p))
        for lane in lanes:          # each lane's page once more: every worker counts some
            async with lane.session.get("/jobs/2") as r:
                assert r.status == 200
                await r.read()
    pages = 2 * len(lanes)
    counted = 0.0
    for _ in range(40):             # the other worker publishes within a second
        text = await p.metrics()
        counted = pages_counted(text)
        if counted >= pages:
            break
        await asyncio.sleep(0.25)
    assert counted == pages
    # A count nothing has raised yet is a series at 0, not a missing one.
    assert 'edge_journeys_dropped_total{store="journeys"} 0.0' in text.splitlines()
