"""Two "hosts" (a Redis outbox and a dispatcher each) on one real redis-server, delivering
to a local recording server over real sockets."""

from __future__ import annotations

import asyncio
import random

import pytest
from test_conversions_recorder import Recorder, Reply

from proxy.config.model import Sink
from proxy.conversions.backoff import BackoffPolicy
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.events import Event
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.states import RowState
from proxy.metrics import Metrics

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis

FAST = BackoffPolicy(base=0.01, cap=0.05)
SID = "11111111-2222-3333-4444-555555555555"


def talroo(rec: Recorder, **kw) -> Sink:
    return Sink("talroo", "talroo", url=rec.url("/conversion2.php"), **kw)


def ev(visitor: str = "v1", **kw) -> Event:
    kw.setdefault("click_ids", {"tlr_sid": SID})
    kw.setdefault("job_id", "42")
    return Event("ApplicationCompleted", links_clicked_id=visitor, **kw)


class Hosts:
    """Outboxes (and dispatchers) sharing one Redis prefix; closed by the fixture."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.boxes: list[RedisOutbox] = []
        self.dispatchers: list[Dispatcher] = []

    def outbox(self) -> RedisOutbox:
        box = RedisOutbox(self.url, metrics=Metrics(), prefix=self.prefix)
        self.boxes.append(box)
        return box

    async def host(self, sinks: list[Sink], **kw) -> tuple[RedisOutbox, Dispatcher]:
        box = self.outbox()
        kw.setdefault("policy", FAST)
        kw.setdefault("poll_interval", 0.05)
        d = Dispatcher(box, {s.name: s for s in sinks}, metrics=box.metrics,
                       rng=random.Random(1), **kw)
        await d.start()
        self.dispatchers.append(d)
        return box, d

    async def close(self) -> None:
        for d in self.dispatchers:
            await d.stop()
        for box in self.boxes:
            await box.close()


@pytest.fixture
async def hosts(redis_url, redis_prefix):
    h = Hosts(redis_url, redis_prefix)
    yield h
    await h.close()


async def wait_state(box: RedisOutbox, row_id: int, state: RowState) -> None:
    for _ in range(2000):
        row = await box.get(row_id)
        if row is not None and row.state is state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"row {row_id} never became {state}")


async def test_two_hosts_deliver_each_row_exactly_once(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec, concurrency=3),
             Sink("hook", "webhook", url=rec.url("/hook"), secret="s", concurrency=2)]
    a, _ = await hosts.host(sinks)
    b, _ = await hosts.host(sinks)
    await asyncio.gather(*((a if i % 2 else b).submit(
        ev(f"v{i}", click_ids={"tlr_sid": f"sid-{i}"}), sinks, consent=True)
        for i in range(40)))
    await rec.wait_for(40, "/conversion2.php")
    await rec.wait_for(40, "/hook")
    for row_id in range(1, 81):
        await wait_state(a, row_id, RowState.SENT)
    sids = [r.query["tlr_sid"] for r in rec.on("/conversion2.php")]
    keys = [r.headers["Idempotency-Key"] for r in rec.on("/hook")]
    assert sorted(sids) == sorted(f"sid-{i}" for i in range(40))
    assert len(set(keys)) == len(keys) == 40
    assert await b.pending_count() == 0
    assert (await a.counts())["talroo"]["sent"] == 40


async def test_a_dead_hosts_lease_expires_and_the_other_delivers_once(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    crashed = hosts.outbox()
    await crashed.submit(ev(), sinks, consent=True)
    (row,) = await crashed.lease("talroo", "crashed-host", 10, lease_seconds=0.3)
    # it never marks the row, and never releases it
    box, _ = await hosts.host(sinks)
    await wait_state(box, row.id, RowState.SENT)
    assert len(rec.requests) == 1
    done = await box.get(row.id)
    assert done.attempts == 2 and done.lease_owner is None
    assert await crashed.mark_sent([row.id], "crashed-host") == 0
    assert await crashed.mark_retry([row.id], "crashed-host", 0, "late") == 0


async def test_dedupe_holds_across_hosts_end_to_end(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    a, _ = await hosts.host(sinks)
    b, db = await hosts.host(sinks)
    await a.submit(ev(), sinks, consent=True)
    await b.submit(ev(), sinks, consent=True)          # the thank-you page, via another host
    await a.submit(ev(event_id="fixed", job_id="7"), sinks, consent=True)
    await b.submit(ev(event_id="fixed", job_id="7"), sinks, consent=True)   # API retry
    await wait_state(a, 1, RowState.SENT)
    await wait_state(a, 2, RowState.SENT)
    assert await a.get(3) is None and len(rec.requests) == 2
    assert db.metrics.registry.get_sample_value(
        "edge_conversions_total", {"sink": "talroo", "outcome": "deduped"}) == 1


async def test_retries_and_dead_letters_across_hosts(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", 500, 503, Reply(400, b"bad id"))
    sinks = [talroo(rec)]
    a, _ = await hosts.host(sinks)
    b, _ = await hosts.host(sinks)
    await a.submit(ev(), sinks, consent=True)
    await wait_state(b, 1, RowState.DEAD)
    (dead,) = await b.list_rows(dead=True)
    assert (dead.attempts, dead.last_error, dead.dead_body) == (3, "HTTP 400", "bad id")
    assert await b.retry_dead() == 1
    await wait_state(a, 1, RowState.SENT)
    assert len(rec.requests) == 4


async def test_a_submit_on_one_host_wakes_the_dispatcher_of_another(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    front = hosts.outbox()                              # serves requests, delivers nothing
    back, _ = await hosts.host(sinks, poll_interval=3600)
    for _ in range(500):                                # until its subscription is live
        if (await back.redis.pubsub_numsub(back._channel))[0][1]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)                            # its first (empty) lease is done
    await front.submit(ev(), sinks, consent=True)
    await rec.wait_for(1)                               # only pub/sub can have woken it
    await wait_state(back, 1, RowState.SENT)
