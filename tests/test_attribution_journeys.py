"""The journey stores, on a real SQLite file and a real redis-server: write-behind,
merging, several stores (processes sharing the file, hosts sharing Redis).

The cases every store must pass run against both (`stores` is parametrized); what
only SQLite does is here too, what only Redis does is in `test_redis_journeys`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import pytest
import redis

from proxy.attribution.clickids import ClickId
from proxy.attribution.journeys import _SCHEMA, JourneyStore
from proxy.attribution.redis_journeys import RedisJourneyStore
from proxy.attribution.visit import Attribution, Visit
from proxy.attribution.write_behind import WriteBehind
from proxy.config.model import AttributionSection, ConsentSection

pytest_plugins = ["redis_server"]

VID = "a" * 32
UUID = "123e4567-e89b-12d3-a456-426614174000"
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def visit(vid: str = VID, new: bool = False, fbc: str | None = None, fbp: str | None = None,
          **clicks: tuple[str, float]) -> Visit:
    return Visit(
        links_clicked_id=vid, new_visitor=new,
        click_ids={p: ClickId(v, t) for p, (v, t) in clicks.items()},
        captured=list(clicks), rejected=[], cookie_rejected=False, consent=True,
        fbc=fbc, fbp=fbp, set_cookies=[], upstream_query=None)


def rows(path, table: str = "journeys") -> int:
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            return 0                         # no store has opened the file yet
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


class Stores:
    """Opens stores on one backing store (each another process or host) and reads what
    is stored there, without a store: journeys, and (param, value, visitor) carriers."""

    def __init__(self, make: Callable[..., WriteBehind], journeys: Callable[[], int],
                 clicks: Callable[[], int]) -> None:
        self.make, self.journeys, self.clicks = make, journeys, clicks

    def __call__(self, **kw) -> WriteBehind:
        return self.make(**kw)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "state.db")


@pytest.fixture(params=BACKENDS)
def stores(request, db):
    if request.param == "sqlite":
        yield Stores(lambda **kw: JourneyStore(db, **kw), lambda: rows(db),
                     lambda: rows(db, "journey_clicks"))
        return
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    raw = redis.Redis.from_url(url)

    def carriers() -> int:
        return sum(raw.zcard(k) for k in raw.keys(prefix + "click:*"))
    yield Stores(lambda **kw: RedisJourneyStore(url, prefix=prefix, **kw),
                 lambda: len(raw.keys(prefix + "journey:*")), carriers)
    raw.close()


async def test_record_flush_get_and_find(stores):
    store = stores()
    store.record(visit(tlr_sid=(UUID, 100.0), fbp="fb.1.1.2"), now=150.0)
    assert stores.journeys() == 0                             # write-behind: not yet
    await store.flush()
    assert store.pending == 0 and stores.journeys() == 1 and stores.clicks() == 1
    j = await store.get(VID)
    assert j.click_ids == {"tlr_sid": ClickId(UUID, 100.0)}
    assert (j.first_seen, j.last_seen, j.fbp, j.fbc) == (100.0, 150.0, "fb.1.1.2", None)
    assert (await store.find_by_click("tlr_sid", UUID)).links_clicked_id == VID
    assert await store.find_by_click("tlr_sid", "other") is None
    assert await store.get("b" * 32) is None
    await store.stop()


async def test_a_batch_being_written_is_still_found(stores):
    """A Hire posted while the flush that holds its visitor is under way must find the
    visitor: the batch stays readable until it is stored."""
    store = stores()
    store.record(visit(tlr_sid=(UUID, 100.0)), now=150.0)
    gate, writing = asyncio.Event(), asyncio.Event()
    write = store._write_batch

    async def held_write(entries):
        writing.set()
        await gate.wait()
        await write(entries)
    store._write_batch = held_write
    flush = asyncio.create_task(store.flush())
    await writing.wait()
    assert stores.journeys() == 0                    # not stored yet ...
    assert (await store.get(VID)).click_ids["tlr_sid"].value == UUID    # ... yet found
    assert (await store.find_by_click("tlr_sid", UUID)).links_clicked_id == VID
    assert await store.ids_by_click_value(UUID) == [VID]
    gate.set()
    await flush
    assert stores.journeys() == 1 and (await store.get(VID)).click_ids["tlr_sid"].value == UUID
    await store.stop()


async def test_a_real_visit_from_the_facade_is_recorded(stores):
    attribution = Attribution(AttributionSection(), ConsentSection(), b"key")
    v = attribution.on_request(raw_query="gclid=G1", cookie_header=None, host="x.example",
                               secure=True, gpc=False)
    store = stores()
    store.record(v)
    await store.stop()
    again = stores()
    try:
        j = await again.get(v.links_clicked_id)
    finally:
        await again.stop()
    assert j.click_ids["gclid"].value == "G1" and j.fbp == v.fbp


async def test_cookieless_first_hit_without_click_ids_is_not_recorded(stores):
    store = stores()
    store.record(visit(new=True))
    assert store.pending == 0
    store.record(visit(new=True, gclid=("G", 1.0)))
    store.record(visit("b" * 32, new=False))                  # came back with a cookie
    assert store.pending == 2
    await store.stop()


async def test_repeated_visits_coalesce_and_every_value_stays_findable(stores):
    store = stores()
    store.record(visit(gclid=("G1", 10.0)), now=10.0)
    store.record(visit(gclid=("G1", 10.0), fbclid=("F", 20.0)), now=20.0)
    store.record(visit(gclid=("G2", 30.0), fbclid=("F", 20.0)), now=30.0)
    assert store.pending == 1
    j = await store.get(VID)                                  # served from the buffer
    assert j.click_ids == {"gclid": ClickId("G2", 30.0), "fbclid": ClickId("F", 20.0)}
    assert (j.first_seen, j.last_seen) == (10.0, 30.0)
    await store.flush()
    assert stores.journeys() == 1 and stores.clicks() == 3    # G1, G2 and F all findable
    for param, value in (("gclid", "G1"), ("gclid", "G2"), ("fbclid", "F")):
        assert (await store.find_by_click(param, value)).links_clicked_id == VID
    j = await store.get(VID)
    assert j.click_ids == {"gclid": ClickId("G2", 30.0), "fbclid": ClickId("F", 20.0)}
    assert (j.first_seen, j.last_seen) == (10.0, 30.0)
    await store.stop()


async def test_unchanged_visitor_is_skipped_within_the_ttl(stores):
    store = stores(recent_ttl=0.2)
    store.record(visit(gclid=("G", 1.0)), now=100.0)
    await store.flush()
    store.record(visit(gclid=("G", 1.0)), now=110.0)
    assert store.pending == 0                                 # nothing new to write
    store.record(visit(gclid=("G", 1.0), fbp="fb.1.1.9"), now=120.0)
    assert store.pending == 1                                 # a change is recorded at once
    await store.flush()
    await asyncio.sleep(0.25)                                 # the ttl has passed
    store.record(visit(gclid=("G", 1.0), fbp="fb.1.1.9"), now=130.0)
    assert store.pending == 1
    await store.flush()
    assert (await store.get(VID)).last_seen == 130.0
    await store.stop()


async def test_recent_visitors_stay_bounded_keeping_the_latest(stores, monkeypatch):
    monkeypatch.setattr("proxy.attribution.write_behind.RECENT_MAX", 8)
    store = stores()
    ids = [f"{i:032x}" for i in range(30)]
    for vid in ids:
        store.record(visit(vid, gclid=("G", 1.0)), now=100.0)
        assert len(store._recent) <= 8
    await store.flush()
    store.record(visit(ids[-1], gclid=("G", 1.0)), now=110.0)
    assert store.pending == 0                   # the latest is remembered: skipped
    store.record(visit(ids[0], gclid=("G", 1.0)), now=110.0)
    assert store.pending == 1                   # the oldest was let go: written again
    await store.stop()


async def test_buffer_is_bounded(stores):
    store = stores(max_pending=3)
    for i in range(5):
        store.record(visit(f"{i:032x}", gclid=(f"G{i}", 1.0)))
    assert store.pending == 3 and store.dropped == 2
    store.record(visit(f"{0:032x}", gclid=("NEWER", 2.0)))    # known ids still merge
    assert store.pending == 3 and store.dropped == 2
    await store.stop()


async def test_background_task_flushes_a_full_batch(stores):
    store = stores(flush_interval=3600, batch_size=10)
    await store.start()
    for i in range(10):
        store.record(visit(f"{i:032x}", gclid=(f"G{i}", 1.0)))
    for _ in range(500):                                      # until the task has written
        if stores.journeys() == 10:
            break
        await asyncio.sleep(0.01)
    assert stores.journeys() == 10 and store.pending == 0
    await store.stop()


async def test_background_task_flushes_on_the_interval(stores):
    store = stores(flush_interval=0.05)
    await store.start()
    store.record(visit(gclid=("G", 1.0)))
    for _ in range(500):
        if stores.journeys() == 1:
            break
        await asyncio.sleep(0.01)
    assert stores.journeys() == 1
    await store.stop()


async def test_stop_flushes_and_a_restart_reads_it_back(stores):
    store = stores(flush_interval=3600)
    await store.start()
    store.record(visit(tlr_sid=(UUID, 5.0)), now=6.0)
    await store.stop()
    again = stores()
    await again.start()
    j = await again.get(VID)
    assert j.click_ids == {"tlr_sid": ClickId(UUID, 5.0)} and j.last_seen == 6.0
    assert (await again.find_by_click("tlr_sid", UUID)).links_clicked_id == VID
    await again.stop()


async def test_two_stores_merge_one_visitor(stores):
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


async def test_concurrent_flushes_from_two_stores(stores):
    a, b = stores(), stores()
    for i in range(300):
        a.record(visit(f"{i:032x}", gclid=(f"A{i}", 1.0)))
        b.record(visit(f"{i:032x}", msclkid=(f"B{i}", 2.0)))
    await asyncio.gather(a.flush(), b.flush())
    assert stores.journeys() == 300 and stores.clicks() == 600
    for i in (0, 150, 299):
        j = await a.get(f"{i:032x}")
        assert set(j.click_ids) == {"gclid", "msclkid"}
        assert (await b.find_by_click("gclid", f"A{i}")).links_clicked_id == f"{i:032x}"
    await a.stop()
    await b.stop()


# -- SQLite only ---------------------------------------------------------------------


async def test_failed_flush_keeps_the_batch(db):
    store = JourneyStore(db)
    store.record(visit(gclid=("G", 1.0)), now=1.0)
    await store.flush()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE journeys")
    store.record(visit(gclid=("G2", 2.0)), now=2.0)
    with pytest.raises(sqlite3.OperationalError):
        await store.flush()
    assert store.pending == 1 and store.failed_flushes == 1
    with sqlite3.connect(db) as conn:
        conn.execute(_SCHEMA[0])
    await store.flush()
    assert (await store.get(VID)).click_ids["gclid"].value == "G2"
    await store.stop()


async def test_prune_forgets_old_journeys(db):
    store = JourneyStore(db)
    store.record(visit("a" * 32, gclid=("OLD", 1.0)), now=100.0)
    store.record(visit("b" * 32, gclid=("NEW", 1.0)), now=900.0)
    await store.flush()
    assert await store.prune(500.0) == 1
    assert await store.get("a" * 32) is None and await store.find_by_click("gclid", "OLD") is None
    assert await store.get("b" * 32) is not None
    await store.stop()
