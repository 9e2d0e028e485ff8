"""The Redis journey store on a real redis-server: write-behind, merging, several hosts."""

from __future__ import annotations

import asyncio

import pytest
import redis

from proxy.attribution.clickids import ClickId
from proxy.attribution.redis_journeys import RedisJourneyStore
from proxy.attribution.visit import Attribution, Visit
from proxy.config.model import AttributionSection, ConsentSection

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis

VID = "a" * 32
UUID = "123e4567-e89b-12d3-a456-426614174000"


def visit(vid: str = VID, new: bool = False, fbc: str | None = None, fbp: str | None = None,
          **clicks: tuple[str, float]) -> Visit:
    return Visit(
        links_clicked_id=vid, new_visitor=new,
        click_ids={p: ClickId(v, t) for p, (v, t) in clicks.items()},
        captured=list(clicks), rejected=[], cookie_rejected=False, consent=True,
        fbc=fbc, fbp=fbp, set_cookies=[], upstream_query=None)


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


def journeys_in(raw, prefix: str) -> int:
    return len(raw.keys(prefix + "journey:*"))


async def test_record_flush_get_and_find(stores, raw):
    store = stores()
    store.record(visit(tlr_sid=(UUID, 100.0), fbp="fb.1.1.2"), now=150.0)
    assert journeys_in(raw, store.prefix) == 0                # write-behind: not yet
    await store.flush()
    assert store.pending == 0 and journeys_in(raw, store.prefix) == 1
    j = await store.get(VID)
    assert j.click_ids == {"tlr_sid": ClickId(UUID, 100.0)}
    assert (j.first_seen, j.last_seen, j.fbp, j.fbc) == (100.0, 150.0, "fb.1.1.2", None)
    assert (await store.find_by_click("tlr_sid", UUID)).links_clicked_id == VID
    assert await store.find_by_click("tlr_sid", "other") is None
    assert await store.get("b" * 32) is None
    assert (await store.lookup(VID)).links_clicked_id == VID
    await store.stop()


async def test_a_real_visit_from_the_facade_is_recorded(stores):
    attribution = Attribution(AttributionSection(), ConsentSection(), b"key")
    v = attribution.on_request(raw_query="gclid=G1", cookie_header=None, host="x.example",
                               secure=True, gpc=False)
    store = stores()
    store.record(v)
    await store.stop()
    again = stores()
    j = await again.get(v.links_clicked_id)
    assert j.click_ids["gclid"].value == "G1" and j.fbp == v.fbp
    await again.stop()


async def test_cookieless_first_hit_without_click_ids_is_not_recorded(stores):
    store = stores()
    store.record(visit(new=True))
    assert store.pending == 0
    store.record(visit(new=True, gclid=("G", 1.0)))
    store.record(visit("b" * 32, new=False))
    assert store.pending == 2
    await store.stop()


async def test_repeated_visits_coalesce_and_every_value_stays_findable(stores, raw):
    store = stores()
    store.record(visit(gclid=("G1", 10.0)), now=10.0)
    store.record(visit(gclid=("G1", 10.0), fbclid=("F", 20.0)), now=20.0)
    store.record(visit(gclid=("G2", 30.0), fbclid=("F", 20.0)), now=30.0)
    assert store.pending == 1
    j = await store.get(VID)                                  # served from the buffer
    assert j.click_ids == {"gclid": ClickId("G2", 30.0), "fbclid": ClickId("F", 20.0)}
    await store.flush()
    assert journeys_in(raw, store.prefix) == 1
    for param, value in (("gclid", "G1"), ("gclid", "G2"), ("fbclid", "F")):
        assert (await store.find_by_click(param, value)).links_clicked_id == VID
    j = await store.get(VID)
    assert j.click_ids == {"gclid": ClickId("G2", 30.0), "fbclid": ClickId("F", 20.0)}
    assert (j.first_seen, j.last_seen) == (10.0, 30.0)
    await store.stop()


async def test_buffer_is_bounded(stores):
    store = stores(max_pending=3)
    for i in range(5):
        store.record(visit(f"{i:032x}", gclid=(f"G{i}", 1.0)))
    assert store.pending == 3 and store.dropped == 2
    store.record(visit(f"{0:032x}", gclid=("NEWER", 2.0)))
    assert store.pending == 3 and store.dropped == 2
    await store.stop()


async def test_background_task_flushes_a_full_batch(stores, raw):
    store = stores(flush_interval=3600, batch_size=10)
    await store.start()
    for i in range(10):
        store.record(visit(f"{i:032x}", gclid=(f"G{i}", 1.0)))
    for _ in range(500):                                      # until the task has written
        if journeys_in(raw, store.prefix) == 10:
            break
        await asyncio.sleep(0.01)
    assert journeys_in(raw, store.prefix) == 10 and store.pending == 0
    await store.stop()


async def test_two_hosts_merge_one_visitor(stores):
    a, b = stores(), stores()
    a.record(visit(tlr_sid=(UUID, 10.0), gclid=("NEWER", 40.0), fbp="fb.1.1.1"), now=40.0)
    b.record(visit(gclid=("OLDER", 20.0), fbclid=("F", 20.0), fbc="fb.1.2.F"), now=20.0)
    await a.flush()
    await b.flush()                              # written last, but its gclid is older
    for store in (a, b):
        j = await store.get(VID)
        assert j.click_ids == {"tlr_sid": ClickId(UUID, 10.0), "gclid": ClickId("NEWER", 40.0),
                               "fbclid": ClickId("F", 20.0)}
        assert (j.first_seen, j.last_seen, j.fbp, j.fbc) == (10.0, 40.0, "fb.1.1.1", "fb.1.2.F")
    c = "c" * 32                                 # the most recent carrier is found from either
    b.record(visit(c, gclid=("NEWER", 50.0)), now=50.0)
    await b.flush()
    assert (await a.find_by_click("gclid", "NEWER")).links_clicked_id == c
    a.record(visit("d" * 32, gclid=("NEWER", 45.0)), now=45.0)   # an older capture, later
    await a.flush()
    assert (await b.find_by_click("gclid", "NEWER")).links_clicked_id == c
    await a.stop()
    await b.stop()


async def test_newer_visit_replaces_fbc_and_an_older_one_only_fills_gaps(stores):
    a, b = stores(), stores()
    a.record(visit(fbc="fb.1.1.OLD"), now=10.0)
    await a.flush()
    b.record(visit(fbc="fb.1.1.NEW", fbp="fb.1.1.P"), now=20.0)
    await b.flush()
    a.record(visit("e" * 32, fbc="x"), now=5.0)                # another visitor: untouched
    a._recent.clear()
    a.record(visit(fbc="fb.1.1.STALE", fbp="fb.1.1.Q"), now=15.0)
    await a.flush()
    j = await b.get(VID)
    assert (j.fbc, j.fbp, j.last_seen) == ("fb.1.1.NEW", "fb.1.1.P", 20.0)
    await a.stop()
    await b.stop()


async def test_concurrent_flushes_from_two_hosts(stores):
    a, b = stores(), stores()
    for i in range(300):
        a.record(visit(f"{i:032x}", gclid=(f"A{i}", 1.0)))
        b.record(visit(f"{i:032x}", msclkid=(f"B{i}", 2.0)))
    await asyncio.gather(a.flush(), b.flush())
    for i in (0, 150, 299):
        j = await a.get(f"{i:032x}")
        assert set(j.click_ids) == {"gclid", "msclkid"}
        assert (await b.find_by_click("gclid", f"A{i}")).links_clicked_id == f"{i:032x}"
    await a.stop()
    await b.stop()


async def test_retention_becomes_a_ttl_renewed_by_each_write(stores, raw):
    store = stores(retention_days=2)
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    await store.flush()
    for key in raw.keys(store.prefix + "*"):
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
