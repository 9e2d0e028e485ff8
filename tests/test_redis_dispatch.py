"""Two "hosts" (a Redis outbox and a dispatcher each) on one real redis-server, delivering
to a local recording server over real sockets: what only Redis does. The cases every
outbox shares (exactly-once across workers, dead owners' leases, dedupe) run against
Redis too, in `test_conversions_dispatcher`."""

from __future__ import annotations

import asyncio

import pytest
from test_conversions_dispatcher import ev, redis_env, talroo, wait_state
from test_conversions_recorder import Recorder, Reply

from proxy.conversions.states import RowState

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis


@pytest.fixture
async def hosts(redis_url, redis_prefix):
    h = redis_env(redis_url, redis_prefix)
    yield h
    await h.close()


async def test_retries_and_dead_letters_across_hosts(aiohttp_server, hosts):
    rec = await Recorder.start(aiohttp_server)
    rec.script("/conversion2.php", 500, 503, Reply(400, b"bad id"))
    sinks = [talroo(rec)]
    a, _ = await hosts.worker(sinks)
    b, _ = await hosts.worker(sinks)
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
    back, _ = await hosts.worker(sinks, poll_interval=3600)
    for _ in range(500):                                # until its subscription is live
        if (await back.redis.pubsub_numsub(back._channel))[0][1]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)                            # its first (empty) lease is done
    await front.submit(ev(), sinks, consent=True)
    await rec.wait_for(1)                               # only pub/sub can have woken it
    await wait_state(back, 1, RowState.SENT)
