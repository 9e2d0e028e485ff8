"""The Redis journey store on a real redis-server: what only Redis does (key TTLs,
expired journeys, a failing merge script). The cases every journey store passes run
against Redis too, in `test_attribution_journeys`."""

from __future__ import annotations

import pytest
import redis
from test_attribution_journeys import VID, visit

from proxy.attribution.clickids import ClickId
from proxy.attribution.redis_journeys import RedisJourneyStore

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis


@pytest.fixture
def stores(redis_url, redis_prefix):
    made: list[RedisJourneyStore] = []

    def make(**kw) -> RedisJourneyStore:
        s = RedisJourneyStore(redis_url, prefix=redis_prefix, **kw)
        made.append(s)
        return s
    return make


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


async def test_lookup_is_get_for_the_events_api(stores):
    store = stores()
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    await store.flush()
    assert (await store.lookup(VID)).links_clicked_id == VID
    await store.stop()


async def test_retention_becomes_a_ttl_renewed_by_each_write(stores, raw):
    store = stores(retention_days=2)
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    await store.flush()
    keys = raw.keys(store.prefix + "*")
    funnel = [k for k in keys if k.startswith((store.prefix + "funnel:").encode())]
    assert len(funnel) == 1 and raw.pttl(funnel[0]) > 400 * 86400_000   # counts outlive visitors
    for key in set(keys) - set(funnel):
        assert 2 * 86400_000 - 60_000 < raw.pttl(key) <= 2 * 86400_000
    raw.pexpire(store.prefix + f"journey:{VID}", 1000)
    store.record(visit(gclid=("G", 1.0), fbp="fb.1.1.1"), now=2.0)
    await store.flush()
    assert raw.pttl(store.prefix + f"journey:{VID}") > 86400_000
    await store.stop()


async def test_a_journey_gone_from_redis_is_not_found_by_its_click(stores, raw):
    store = stores()
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    store.record(visit("b" * 32, gclid=("G", 2.0)), now=2.0)
    await store.flush()
    raw.delete(store.prefix + "journey:" + "b" * 32)           # expired since
    assert (await store.find_by_click("gclid", "G")).links_clicked_id == VID
    await store.stop()


async def test_failed_flush_keeps_the_batch(stores, raw):
    store = stores()
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    await store.flush()
    raw.delete(store.prefix + f"journey:{VID}")
    raw.set(store.prefix + f"journey:{VID}", "not a hash")     # the merge script fails
    store.record(visit(gclid=("G2", 2.0)), now=2.0)
    with pytest.raises(redis.ResponseError):
        await store.flush()
    assert store.pending == 1 and store.failed_flushes == 1
    raw.delete(store.prefix + f"journey:{VID}")
    await store.flush()
    assert (await store.get(VID)).click_ids == {"gclid": ClickId("G2", 2.0)}
    await store.stop()
