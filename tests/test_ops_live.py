"""The live feed's pub/sub: publishing never waits, a stalled subscriber is dropped,
closing ends every subscription at once."""

from __future__ import annotations

import asyncio

import orjson

from proxy.ops.live import Live


async def test_each_subscriber_gets_each_message_in_order() -> None:
    live = Live()
    a, b = live.subscribe(), live.subscribe()
    assert a is not None and b is not None
    live.publish("conversion", {"n": 1})
    live.publish("delivery", {"n": 2})
    for sub in (a, b):
        assert await sub.next(1) == ("conversion", orjson.dumps({"n": 1}))
        assert await sub.next(1) == ("delivery", orjson.dumps({"n": 2}))
    assert await a.next(0.01) is None and not a.ended          # quiet: a ping is due


async def test_a_subscriber_that_falls_behind_is_dropped_and_the_rest_go_on() -> None:
    live = Live(queue_size=4)
    slow, fast = live.subscribe(), live.subscribe()
    assert slow is not None and fast is not None
    got = []
    for n in range(10):
        live.publish("conversion", {"n": n})     # returns at once, whoever is behind
        got.append(await fast.next(1))
    assert len(got) == 10 and slow.ended and live.dropped == 1
    assert await slow.next(1) is None                      # what it had queued is dropped
    assert live.subscribers == 1


async def test_close_ends_waiting_readers_at_once_and_refuses_new_ones() -> None:
    live = Live()
    sub = live.subscribe()
    assert sub is not None
    waiting = asyncio.create_task(sub.next(3600))
    await asyncio.sleep(0)
    live.close()
    assert await asyncio.wait_for(waiting, 5) is None and sub.ended
    assert live.subscribe() is None and live.subscribers == 0
    live.publish("conversion", {"n": 1})                   # nobody listens: nothing to do


def test_subscribers_are_bounded() -> None:
    live = Live(max_subscribers=2)
    first = live.subscribe()
    assert first is not None and live.subscribe() is not None
    assert live.subscribe() is None
    first.close()
    assert live.subscribe() is not None
