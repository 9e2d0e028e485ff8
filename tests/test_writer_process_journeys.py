"""The journeys written by the outbox's writer process, real SQLite and a real child: a
flush's slices commit with the submits, a submit is not held behind a large flush,
and a kill mid-flush loses nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.attribution.journeys import FLOOD_SLICE, SLICE, JourneyStore
from proxy.attribution.visit import ClickId, Visit
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.writer_process import WriterDied, _taken
from tests.test_writer_process import box, other

__all__ = ["box"]          # the outbox fixture, with its writer process

TALROO = Sink("talroo", "talroo")
MANY = 10_000


def ev(event_id: str) -> Event:
    return Event("ApplicationCompleted", event_id=event_id, links_clicked_id=event_id,
                 job_id="42", click_ids={"tlr_sid": "x"})


def visit(vid: str) -> Visit:
    return Visit(links_clicked_id=vid, new_visitor=True,
                 click_ids={"gclid": ClickId(f"g-{vid}", time.time())}, captured=["gclid"],
                 rejected=[], cookie_rejected=False, consent=True, fbc=None, fbp=None,
                 set_cookies=[], upstream_query=None)


@pytest.fixture
async def journeys(box: SqliteOutbox) -> AsyncIterator[JourneyStore]:
    store = JourneyStore(box.path, writer=box.writer, max_pending=2 * MANY,
                         batch_size=2 * MANY, flush_interval=3600)
    await store.start()       # the schema; flushed by the tests themselves
    yield store
    await store.stop()


def count(box: SqliteOutbox, sql: str) -> int:
    c = other(box)
    try:
        return c.execute(sql).fetchone()[0] or 0
    finally:
        c.close()


def journeys_stored(box: SqliteOutbox) -> int:
    return count(box, "SELECT count(*) FROM journeys")


def clicks_counted(box: SqliteOutbox) -> int:
    return count(box, "SELECT sum(n) FROM edge_counts WHERE step = 'clicks'")


async def until(check, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, what
        await asyncio.sleep(0.01)


async def test_a_flush_is_written_by_the_outbox_writer_and_not_the_thread(box, journeys):
    for i in range(3 * SLICE):
        journeys.record(visit(f"j{i}"))
    before, thread = box.writer.commits, box.worker.commits
    await journeys.flush()
    assert journeys_stored(box) == 3 * SLICE and clicks_counted(box) == 3 * SLICE
    assert box.writer.commits - before == 3          # one slice per transaction
    assert box.worker.commits == thread
    assert (await journeys.get("j7")).click_ids["gclid"].value == "g-j7"


async def test_a_slice_and_the_submits_queued_with_it_share_one_commit(box, journeys):
    for i in range(SLICE // 2):
        journeys.record(visit(f"j{i}"))
    lock = other(box)
    lock.execute("BEGIN IMMEDIATE")       # the child waits for it with all of them sent
    before = box.writer.commits
    flush = asyncio.ensure_future(journeys.flush())
    subs = [asyncio.ensure_future(box.submit(ev(f"e{i}"), [TALROO], consent=True))
            for i in range(3)]
    await until(lambda: box.writer.in_flight == 4 and not box.writer.unsent, "not sent")
    lock.execute("COMMIT")
    lock.close()
    await flush
    assert [r.queued for r in await asyncio.gather(*subs)] == [("talroo",)] * 3
    assert box.writer.commits - before == 1
    assert journeys_stored(box) == SLICE // 2


async def test_a_submit_is_not_held_behind_a_large_journey_batch(box, journeys):
    for i in range(MANY):
        journeys.record(visit(f"j{i:05d}"))
    flush = asyncio.ensure_future(journeys.flush())
    await until(lambda: box.writer.in_flight == 1, "the flush sent nothing")
    r = await box.submit(ev("a"), [TALROO], consent=True)
    written = journeys_stored(box)      # the flush sends a slice only once one is done
    assert r.queued == ("talroo",)
    assert count(box, "SELECT count(*) FROM edge_outbox WHERE event_id = 'a'") == 1
    # Answered while the flush goes on: how many slices went before it depends on how
    # fast the child writes them (a few), never on the size of the flush.
    assert not flush.done() and written < MANY
    await flush
    assert journeys_stored(box) == MANY and clicks_counted(box) == MANY


async def test_journeys_survive_a_writer_kill_mid_flush_as_submits_do(box, journeys):
    for i in range(10):
        journeys.record(visit(f"a{i}"))
    await journeys.flush()                                     # acknowledged
    acked = await box.submit(ev("acked"), [TALROO], consent=True)
    assert acked.queued == ("talroo",)
    # A trigger that keeps the child inside the slice holding j05000, earlier ones
    # committed.
    c = other(box)
    c.execute("CREATE TABLE slow (n INTEGER)")
    c.executemany("INSERT INTO slow VALUES (?)", [(i,) for i in range(1000)])
    c.execute("CREATE TRIGGER slow_down AFTER INSERT ON journeys"
              " WHEN NEW.links_clicked_id = 'j05000'"
              " BEGIN SELECT sum(a.n * b.n * d.n) FROM slow a, slow b, slow d; END")
    c.close()
    for i in range(MANY):
        journeys.record(visit(f"j{i:05d}"))
    flush = asyncio.ensure_future(journeys.flush())
    await until(lambda: journeys_stored(box) >= 10 + 5000, "the slices before never landed")
    await asyncio.sleep(0.2)
    assert not flush.done() and journeys_stored(box) == 10 + 5000
    pid = box.writer.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WriterDied):
        await flush
    # What was acknowledged is there; the flush was not, and is kept whole.
    assert journeys_stored(box) == 10 + 5000
    assert count(box, "SELECT count(*) FROM edge_outbox WHERE event_id = 'acked'") == 1
    assert journeys.pending == MANY and journeys.failed_flushes == 1
    c = other(box)
    c.execute("DROP TRIGGER slow_down")
    c.close()
    await journeys.flush()                     # a new child; slices written again
    assert box.writer.pid != pid and box.writer.starts == 2
    assert journeys_stored(box) == 10 + MANY
    assert clicks_counted(box) == 10 + MANY    # the rewritten slices not counted twice
    assert journeys.pending == 0


async def test_a_closed_writer_leaves_the_journeys_to_the_thread(box, journeys):
    for i in range(SLICE + 1):
        journeys.record(visit(f"j{i}"))
    await box.writer.close()
    thread = box.worker.commits
    await journeys.flush()
    assert journeys_stored(box) == SLICE + 1 and box.worker.commits - thread == 1


async def test_the_child_imports_the_journeys_batch_before_it_is_ready(tmp_path):
    """The first flush must not wait for the child's import (a second under load), nor
    the submits queued behind it."""
    b = SqliteOutbox(str(tmp_path / "state.db"))
    JourneyStore(b.path, writer=b.writer)          # as `open_stores`: before the start
    try:
        await b.start()
        args = psutil.Process(b.writer.pid).cmdline()
        assert "proxy.attribution.journey_rows:write_journeys" in args
        assert "proxy.conversions.sqlite_submit:submit_many" in args
    finally:
        await b.close()


@given(st.lists(st.booleans(), max_size=40), st.booleans())
def test_an_unsynced_transaction_takes_no_item_that_needs_a_sync(needs, synced):
    queued = [(i, "m:f", None, need) for i, need in enumerate(needs)]
    n = _taken(queued, synced)
    if synced:
        assert n == len(queued)
    else:
        assert not any(f[3] for f in queued[:n])          # none of them left unsynced
        assert n == len(queued) or queued[n][3]           # and it stops only at one


async def test_behind_a_flood_the_slices_grow(box):
    """A quarter of the buffer waiting again while a batch is written: the rest of the
    batch goes in slices of FLOOD_SLICE, fewer round trips for the same journeys."""
    store = JourneyStore(box.path, writer=box.writer, max_pending=8 * FLOOD_SLICE,
                         batch_size=100 * FLOOD_SLICE, flush_interval=3600)
    await store.start()
    try:
        first = 3 * FLOOD_SLICE
        for i in range(first):
            store.record(visit(f"a{i:04d}"))
        lock = other(box)
        lock.execute("BEGIN IMMEDIATE")     # the first slice waits in the child
        before = box.writer.commits
        flush = asyncio.ensure_future(store.flush())
        await until(lambda: box.writer.in_flight == 1, "the flush sent nothing")
        for i in range(2 * FLOOD_SLICE):    # a quarter of the buffer, arriving meanwhile
            store.record(visit(f"b{i:04d}"))
        lock.execute("COMMIT")
        lock.close()
        await flush
        # One slice of SLICE sent before the flood, then the rest in FLOOD_SLICEs.
        rest = first - SLICE
        assert box.writer.commits - before == 1 + -(-rest // FLOOD_SLICE)
        assert journeys_stored(box) == first and clicks_counted(box) == first
        await store.flush()                 # what arrived meanwhile, in its turn
        assert journeys_stored(box) == first + 2 * FLOOD_SLICE
    finally:
        await store.stop()
