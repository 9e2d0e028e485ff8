"""The Redis outbox on a real redis-server: what only Redis does (keys and TTLs,
pub/sub wake-ups, the shared secret, a Redis that is away). The cases every outbox
passes run against Redis too, in `test_conversions_outbox`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import redis
from test_conversions_outbox import META, TALROO, Clock, ev

from proxy.conversions.events import Event
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.states import RowState
from proxy.metrics import Metrics
from proxy.state_redis import redis_secret

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis


@pytest.fixture
async def box(redis_url, redis_prefix):
    clock = Clock()
    ob = RedisOutbox(redis_url, metrics=Metrics(), clock=clock, prefix=redis_prefix)
    ob.clock_ = clock
    yield ob
    await ob.close()


@pytest.fixture
async def twin(box):
    """A second outbox on the same Redis and prefix: another host."""
    ob = RedisOutbox(box.url, metrics=Metrics(), clock=box.clock_, prefix=box.prefix)
    yield ob
    await ob.close()


async def test_submit_is_stored_when_it_returns(box, redis_url):
    r = await box.submit(ev(), [TALROO], consent=True)
    other = redis.Redis.from_url(redis_url)
    try:
        keys = other.keys(box.prefix + "row:*")
        assert len(keys) == 1
        row = other.hgetall(keys[0])
        assert (row[b"sink"], row[b"state"], row[b"event_id"]) == (
            b"talroo", b"pending", r.event_id.encode())
        assert Event.from_json(row[b"event"]) == ev(event_id=r.event_id)
    finally:
        other.close()


async def test_dedupe_key_lives_in_redis_with_the_window_as_ttl(box, redis_url):
    await box.submit(ev(dedupe_hours=2), [TALROO], consent=True)
    other = redis.Redis.from_url(redis_url)
    try:
        (key,) = other.keys(box.prefix + "dedupe:*")
        assert 7_100_000 < other.pttl(key) <= 7_200_000
    finally:
        other.close()


async def test_a_submit_on_one_host_wakes_the_others(box, twin):
    woke: asyncio.Queue[list[str]] = asyncio.Queue()
    twin.subscribe(lambda names: woke.put_nowait(list(names)))
    local: list[list[str]] = []
    box.subscribe(lambda names: local.append(list(names)))
    await twin.lease("talroo", "B", 1, 60)                   # starts listening
    for _ in range(200):                                      # until the subscription is live
        if (await twin.redis.pubsub_numsub(twin._channel))[0][1]:
            break
        await asyncio.sleep(0.01)
    await box.submit(ev(), [TALROO, META], consent=True)
    assert await woke.get() == ["talroo", "meta"]
    assert local == [["talroo", "meta"]]                      # no echo of one's own submit


def test_the_secret_is_made_once_and_shared(redis_url, redis_prefix):
    first = redis_secret(redis_url, prefix=redis_prefix)
    assert len(first) == 32
    assert redis_secret(redis_url, prefix=redis_prefix) == first
    assert redis_secret(redis_url, prefix=redis_prefix + "x") != first


def test_a_submit_survives_sigkill_right_after_it_returns(redis_url, redis_prefix):
    code = textwrap.dedent(f"""
        import asyncio, os, signal
        from proxy.config.model import Sink
        from proxy.conversions.events import Event
        from proxy.conversions.redis_outbox import RedisOutbox
        async def main():
            box = RedisOutbox({redis_url!r}, prefix={redis_prefix!r})
            await box.submit(Event("Hire", event_id="k1", links_clicked_id="v",
                                   click_ids={{"tlr_sid": "x"}}),
                             [Sink("talroo", "talroo")], consent=True)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert proc.returncode == -9

    async def look() -> list:
        box = RedisOutbox(redis_url, prefix=redis_prefix)
        try:
            return [(r.event.event_id, r.state) for r in await box.list_rows()]
        finally:
            await box.close()
    assert asyncio.run(look()) == [("k1", RowState.PENDING)]


async def test_a_redis_that_is_away_fails_the_call_rather_than_hanging():
    from redis_server import free_port
    box = RedisOutbox(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(redis.ConnectionError):
            await box.submit(ev(), [TALROO], consent=True)
        with pytest.raises(redis.ConnectionError):
            await box.pending_count()                        # what readiness asks
    finally:
        await box.close()
