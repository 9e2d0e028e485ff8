"""The dispatcher end to end: real outboxes (SQLite, and Redis where the case is shared),
real sockets to a recording server. Cases only Redis has (pub/sub wake-ups, dead letters
handed between hosts) are in `test_redis_dispatch`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from test_conversions_recorder import Recorder, Reply

from proxy.config.model import Sink
from proxy.conversions.backoff import BackoffPolicy
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.events import Event
from proxy.conversions.outbox import Outbox
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.states import RowState
from proxy.metrics import Metrics

pytest_plugins = ["redis_server"]

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
FAST = BackoffPolicy(base=0.01, cap=0.05)
SID = "11111111-2222-3333-4444-555555555555"


def talroo(rec: Recorder, name: str = "talroo", path: str = "/conversion2.php", **kw) -> Sink:
    return Sink(name, "talroo", url=rec.url(path), **kw)


def ev(visitor: str = "v1", **kw) -> Event:
    kw.setdefault("click_ids", {"tlr_sid": SID})
    kw.setdefault("job_id", "42")
    return Event("ApplicationCompleted", links_clicked_id=visitor, **kw)


def sample(metrics: Metrics, sink: str, outcome: str) -> float:
    return metrics.registry.get_sample_value(
        "edge_conversions_total", {"sink": sink, "outcome": outcome}) or 0.0


class Env:
    """Outboxes, and workers (an outbox and a running dispatcher each), on one store:
    each another process or host. Closed by the fixture."""

    def __init__(self, open_outbox: Callable[[Metrics], Outbox], path: str = "") -> None:
        self.open_outbox = open_outbox
        self.path = path                    # the SQLite file, for SQLite-only cases
        self.boxes: list[Outbox] = []
        self.dispatchers: list[Dispatcher] = []

    def outbox(self) -> Outbox:
        box = self.open_outbox(Metrics())
        self.boxes.append(box)
        return box

    async def worker(self, sinks: list[Sink], **kw) -> tuple[Outbox, Dispatcher]:
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


def sqlite_env(path: str) -> Env:
    return Env(lambda metrics: SqliteOutbox(path, metrics=metrics), path)


def redis_env(url: str, prefix: str) -> Env:
    return Env(lambda metrics: RedisOutbox(url, metrics=metrics, prefix=prefix))


@pytest.fixture
async def env(tmp_path):
    e = sqlite_env(str(tmp_path / "state.db"))
    yield e
    await e.close()


@pytest.fixture(params=BACKENDS)
async def any_env(request, tmp_path):
    if request.param == "redis":
        e = redis_env(request.getfixturevalue("redis_url"),
                      request.getfixturevalue("redis_prefix"))
    else:
        e = sqlite_env(str(tmp_path / "state.db"))
    yield e
    await e.close()


async def wait_state(box: Outbox, row_id: int, state: RowState) -> None:
    for _ in range(2000):
        row = await box.get(row_id)
        if row is not None and row.state is state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"row {row_id} never became {state}")


async def test_500_three_times_then_delivered_once(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", 500, 502, 503)
    box, d = await env.worker([talroo(rec)])
    await box.submit(ev(), [talroo(rec)], consent=True)
    await rec.wait_for(4)
    await wait_state(box, 1, RowState.SENT)
    row = await box.get(1)
    assert row.attempts == 4 and row.last_error == "HTTP 503"
    assert len(rec.requests) == 4
    assert rec.requests[-1].query["tlr_sid"] == SID
    assert sample(d.metrics, "talroo", "retried") == 3
    assert sample(d.metrics, "talroo", "sent") == 1
    await asyncio.sleep(0.2)                  # a further poll sends nothing more
    assert len(rec.requests) == 4


async def test_429_retry_after_is_honoured(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", Reply(429, headers={"Retry-After": "1"}))
    box, _ = await env.worker([talroo(rec)], policy=BackoffPolicy(base=0.01, cap=5))
    await box.submit(ev(), [talroo(rec)], consent=True)
    await rec.wait_for(1)
    await wait_state(box, 1, RowState.RETRY)
    row = await box.get(1)
    assert row.next_attempt_at >= rec.requests[0].at + 1.0
    await rec.wait_for(2)
    assert rec.requests[1].at - rec.requests[0].at >= 1.0
    await wait_state(box, 1, RowState.SENT)


async def test_retry_after_is_capped(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", Reply(503, headers={"Retry-After": "86400"}))
    box, _ = await env.worker([talroo(rec)])           # cap 0.05 s
    await box.submit(ev(), [talroo(rec)], consent=True)
    await rec.wait_for(2)
    await wait_state(box, 1, RowState.SENT)


async def test_400_is_dead_lettered_listed_and_retry_dead_delivers(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", Reply(400, b'{"error": "unknown tlr_sid"}' + b"x" * 10000))
    box, d = await env.worker([talroo(rec)])
    await box.submit(ev(), [talroo(rec)], consent=True)
    await wait_state(box, 1, RowState.DEAD)
    (dead,) = await box.list_rows(dead=True)
    assert dead.last_error == "HTTP 400" and dead.attempts == 1
    assert dead.dead_body.startswith('{"error": "unknown tlr_sid"}') and len(dead.dead_body) == 4096
    assert sample(d.metrics, "talroo", "dead") == 1 and len(rec.requests) == 1
    assert await box.retry_dead() == 1
    await wait_state(box, 1, RowState.SENT)
    assert len(rec.requests) == 2


async def test_timeouts_and_refused_connections_are_retried(aiohttp_server, env, unused_tcp_port):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/slow", Reply(delay=5))
    slow = Sink("slow", "talroo", url=rec.url("/slow"), timeout=0.2)
    refused = Sink("refused", "talroo", url=f"http://127.0.0.1:{unused_tcp_port}/c")
    box, _ = await env.worker([slow, refused])
    await box.submit(ev(), [slow, refused], consent=True)
    await wait_state(box, 1, RowState.SENT)           # second try answers at once
    for _ in range(2000):
        row = await box.get(2)
        if row.state is RowState.RETRY and row.attempts >= 2:
            break
        await asyncio.sleep(0.01)
    assert row.state is RowState.RETRY and row.attempts >= 2
    assert row.last_error.startswith("ClientConnectorError")
    assert (await box.get(1)).last_error == "timeout"


async def test_a_hung_sink_never_delays_another(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/hang", Reply(delay=30))
    hung = Sink("hung", "talroo", url=rec.url("/hang"), timeout=60, concurrency=1)
    fine = talroo(rec, "fine")
    box, d = await env.worker([hung, fine])
    for i in range(3):
        await box.submit(ev(f"v{i}"), [hung, fine], consent=True)
    await rec.wait_for(3, "/conversion2.php")
    assert len(rec.on("/hang")) == 1                   # concurrency 1: one stuck request
    assert (await box.counts())["fine"]["sent"] in (2, 3)
    await d.stop(grace=0.1)                            # the stuck one is released
    counts = await box.counts()
    assert counts["hung"]["retry"] == 1 and counts["hung"]["pending"] == 2
    assert counts["hung"]["leased"] == 0


async def test_dedupe_end_to_end_one_delivery_from_any_worker(aiohttp_server, any_env):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    a, da = await any_env.worker(sinks)
    b, db = await any_env.worker(sinks)
    await a.submit(ev(), sinks, consent=True)
    await a.submit(ev(), sinks, consent=True)         # the thank-you page reloaded
    await b.submit(ev(), sinks, consent=True)         # ... and served by another worker
    await a.submit(ev(event_id="fixed", job_id="7"), sinks, consent=True)
    await b.submit(ev(event_id="fixed", job_id="7"), sinks, consent=True)   # API retry
    await wait_state(a, 1, RowState.SENT)
    await wait_state(a, 2, RowState.SENT)
    await asyncio.sleep(0.2)                          # a duplicate would show up by now
    assert await a.get(3) is None and len(rec.requests) == 2
    assert sample(da.metrics, "talroo", "deduped") == 1
    assert sample(db.metrics, "talroo", "deduped") == 1


async def test_two_workers_on_one_store_deliver_each_row_once(aiohttp_server, any_env):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec, concurrency=3), Sink("hook", "webhook", url=rec.url("/hook"),
                                              secret="s", concurrency=2)]
    box1, _ = await any_env.worker(sinks)
    box2, _ = await any_env.worker(sinks)
    subs = [(box1 if i % 2 else box2).submit(ev(f"v{i}", click_ids={"tlr_sid": f"sid-{i}"}),
                                             sinks, consent=True) for i in range(40)]
    await asyncio.gather(*subs)
    await rec.wait_for(40, "/conversion2.php")
    await rec.wait_for(40, "/hook")
    for row_id in range(1, 81):
        await wait_state(box1, row_id, RowState.SENT)
    await asyncio.sleep(0.3)                           # a duplicate would show up by now
    sids = [r.query["tlr_sid"] for r in rec.on("/conversion2.php")]
    keys = [r.headers["Idempotency-Key"] for r in rec.on("/hook")]
    assert sorted(sids) == sorted(f"sid-{i}" for i in range(40))
    assert len(set(keys)) == len(keys) == 40
    assert await box1.pending_count() == 0 and await box2.pending_count() == 0
    assert (await box1.counts())["talroo"]["sent"] == 40


async def test_a_dead_owners_lease_expires_and_another_delivers_once(aiohttp_server, any_env):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    crashed = any_env.outbox()
    await crashed.submit(ev(), sinks, consent=True)
    (row,) = await crashed.lease("talroo", "crashed-worker", 10, lease_seconds=0.3)
    # it never marks the row, and never releases it
    box, _ = await any_env.worker(sinks)
    await wait_state(box, row.id, RowState.SENT)
    assert len(rec.requests) == 1
    done = await box.get(row.id)
    assert done.attempts == 2 and done.lease_owner is None
    assert await crashed.mark_sent([row.id], "crashed-worker") == 0
    assert await crashed.mark_retry([row.id], "crashed-worker", 0, "late") == 0


async def test_a_restart_delivers_what_was_left_pending(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    sinks = [talroo(rec)]
    before = SqliteOutbox(env.path)
    for i in range(3):
        await before.submit(ev(f"v{i}"), sinks, consent=True)
    await before.close()
    assert rec.requests == []
    box, _ = await env.worker(sinks)
    await rec.wait_for(3)
    for i in (1, 2, 3):
        await wait_state(box, i, RowState.SENT)


async def test_the_pending_gauge_follows_the_outbox(aiohttp_server, env):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", Reply(500))
    box = SqliteOutbox(env.path)
    await box.submit(ev(), [talroo(rec)], consent=True)
    await box.close()
    _, d = await env.worker([talroo(rec)], policy=BackoffPolicy(base=30, cap=30))
    await rec.wait_for(1)
    for _ in range(500):
        if d.metrics.registry.get_sample_value("edge_outbox_pending") == 1:
            break
        await asyncio.sleep(0.01)
    assert d.metrics.registry.get_sample_value("edge_outbox_pending") == 1


class CancelBecomesError(SqliteOutbox):
    """A store whose client turns a cancellation during a command into an error of
    its own, as a client library may: the dispatcher's loop sees an Exception."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.leasing = asyncio.Event()

    async def lease(self, *args, **kw):
        self.leasing.set()
        try:
            await asyncio.sleep(3600)           # a command that is still running
        except asyncio.CancelledError:
            raise ConnectionError("connection closed during the command") from None
        return []


async def test_stop_ends_a_loop_whose_store_swallowed_the_cancel(tmp_path):
    box = CancelBecomesError(str(tmp_path / "state.db"), metrics=Metrics())
    d = Dispatcher(box, {"talroo": Sink("talroo", "talroo", url="http://127.0.0.1:9/c")},
                   metrics=box.metrics, policy=FAST, poll_interval=0.05)
    await d.start()
    await box.leasing.wait()
    try:
        # Before, the loop logged the error and leased again: stop waited forever.
        await asyncio.wait_for(d.stop(), timeout=30)
    finally:
        await box.close()
