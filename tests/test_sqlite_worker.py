"""The SQLite worker: order, errors, close, group commit, one writer per file, and
what a submit acknowledged under group commit leaves after a SIGKILL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from proxy.attribution.journeys import JourneyStore
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.feed.jobs import JobStore
from proxy.sqlite_worker import SqliteWorker, WorkerClosed

TALROO = Sink("talroo", "talroo")


def _table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")


@pytest.fixture
async def worker(tmp_path: Path):
    w = SqliteWorker(str(tmp_path / "w.db"), _table)
    yield w
    if not w.closed:
        await w.close()


async def hold(w: SqliteWorker) -> tuple[asyncio.Future, threading.Event]:
    """Keep the thread in a job until the returned event is set: jobs queue up."""
    started, release = threading.Event(), threading.Event()

    def held(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait()

    fut = asyncio.ensure_future(w.run(held))
    await asyncio.to_thread(started.wait)
    return fut, release


def _insert(n: int):
    return lambda c: c.execute("INSERT INTO t VALUES (?)", (n,)).lastrowid


def _rows(path: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM t ORDER BY rowid")]


async def test_jobs_run_in_the_order_they_were_queued(worker):
    held, release = await hold(worker)
    jobs = [asyncio.ensure_future(worker.run(_insert(n))) for n in range(100)]
    await asyncio.sleep(0)
    release.set()
    await held
    assert await asyncio.gather(*jobs) == list(range(1, 101))     # rowids, in order
    assert _rows(worker.path) == list(range(100))


async def test_a_batch_function_gets_the_consecutive_items_in_one_call(worker):
    calls: list[list[int]] = []

    def many(conn: sqlite3.Connection, items: list[int]) -> list[int]:
        calls.append(items)
        conn.execute("INSERT INTO t SELECT value FROM json_each(?)", (str(items),))
        return [i * 10 for i in items]

    held, release = await hold(worker)
    first = [asyncio.ensure_future(worker.run_many(many, i)) for i in range(5)]
    between = asyncio.ensure_future(worker.run(_insert(99)))
    last = [asyncio.ensure_future(worker.run_many(many, i)) for i in range(5, 8)]
    await asyncio.sleep(0)
    release.set()
    await held
    assert await asyncio.gather(*first, *last) == [i * 10 for i in range(8)]
    await between
    assert calls == [[0, 1, 2, 3, 4], [5, 6, 7]]
    assert _rows(worker.path) == [0, 1, 2, 3, 4, 99, 5, 6, 7]


async def test_an_exception_in_a_job_reaches_its_caller_and_not_the_thread(worker):
    def boom(conn: sqlite3.Connection) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await worker.run(boom)
    assert await worker.run(_insert(1)) == 1
    held, release = await hold(worker)
    ok1 = asyncio.ensure_future(worker.run(_insert(2)))
    bad = asyncio.ensure_future(worker.run(boom))
    ok2 = asyncio.ensure_future(worker.run(_insert(3)))
    await asyncio.sleep(0)
    release.set()
    await held
    await ok1, await ok2
    with pytest.raises(KeyError):
        await bad
    assert _rows(worker.path) == [1, 2, 3]
    assert worker.groups_retried == 2


async def test_a_failing_batch_function_fails_only_the_item_that_fails(worker):
    def many(conn: sqlite3.Connection, items: list[int]) -> list[int]:
        for i in items:
            if i < 0:
                raise ValueError(i)
            conn.execute("INSERT INTO t VALUES (?)", (i,))
        return items

    held, release = await hold(worker)
    jobs = [asyncio.ensure_future(worker.run_many(many, i)) for i in (1, -1, 2)]
    await asyncio.sleep(0)
    release.set()
    await held
    done = await asyncio.gather(*jobs, return_exceptions=True)
    assert done[0] == 1 and done[2] == 2 and isinstance(done[1], ValueError)
    assert _rows(worker.path) == [1, 2]


async def test_close_runs_what_is_queued_then_refuses_more(worker):
    held, release = await hold(worker)
    jobs = [asyncio.ensure_future(worker.run(_insert(n))) for n in range(20)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(worker.close())
    await asyncio.sleep(0)
    release.set()
    await held
    await closing
    assert len(await asyncio.gather(*jobs)) == 20
    assert _rows(worker.path) == list(range(20))
    with pytest.raises(WorkerClosed):
        await worker.run(_insert(0))


async def test_jobs_queued_during_a_commit_share_the_next_one(worker):
    held, release = await hold(worker)
    before = worker.commits
    jobs = [asyncio.ensure_future(worker.run(_insert(n))) for n in range(200)]
    await asyncio.sleep(0)
    release.set()
    await held
    await asyncio.gather(*jobs)
    assert worker.commits - before == 2          # the held job's, then all 200 in one


async def test_a_reader_runs_no_transaction(tmp_path):
    path = str(tmp_path / "r.db")
    writer = SqliteWorker(path, _table)
    reader = SqliteWorker(path, name="reads", writes=False)
    try:
        held, release = await hold(writer)   # its IMMEDIATE transaction open: no wait
        assert await reader.run(lambda c: c.in_transaction) is False
        assert await reader.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
        release.set()
        await held
        assert reader.commits == 0
    finally:
        await reader.close()
        await writer.close()


async def test_the_stores_of_one_file_share_one_durable_writer(tmp_path):
    path = str(tmp_path / "state.db")
    journeys = JourneyStore(path)
    await journeys.start()
    box = SqliteOutbox(path)
    jobs = JobStore(path)
    await jobs.load()
    try:
        assert journeys.worker is box.worker
        assert await box.worker.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2
        await journeys.stop()
        await jobs.close()
        assert not box.worker.closed              # the outbox still uses it
        r = await box.submit(Event("Hire", links_clicked_id="v", click_ids={"tlr_sid": "x"}),
                             [TALROO], consent=True)
        assert r.queued == ("talroo",)
    finally:
        await box.close()
    assert box.worker.closed
    again = SqliteOutbox(path)                    # a new writer after the last one closed
    try:
        assert again.worker is not box.worker
        assert await again.pending_count() == 1
    finally:
        await again.close()


def test_submits_acknowledged_in_one_group_commit_survive_sigkill(tmp_path):
    db = tmp_path / "state.db"
    code = textwrap.dedent(f"""
        import asyncio, os, signal, threading
        from proxy.config.model import Sink
        from proxy.conversions.events import Event
        from proxy.conversions.sqlite_outbox import SqliteOutbox
        async def main():
            box = SqliteOutbox({str(db)!r})
            started, release = threading.Event(), threading.Event()
            def hold(conn):
                started.set()
                release.wait()
            held = asyncio.ensure_future(box.worker.run(hold))
            await asyncio.to_thread(started.wait)
            before = box.commits
            subs = [asyncio.ensure_future(box.submit(
                Event("Hire", event_id=f"k{{i}}", links_clicked_id=f"v{{i}}",
                      click_ids={{"tlr_sid": "x"}}), [Sink("talroo", "talroo")], consent=True))
                for i in range(40)]
            await asyncio.sleep(0)
            release.set()
            await held
            await asyncio.gather(*subs)
            assert box.commits - before == 2, box.commits - before
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == -9
    conn = sqlite3.connect(db)
    assert sorted(conn.execute("SELECT event_id FROM edge_outbox WHERE state = 'pending'")) \
        == sorted((f"k{i}",) for i in range(40))
    assert conn.execute("SELECT count(*) FROM edge_event_ids").fetchone()[0] == 40


async def test_the_writer_leaves_wal_checkpoints_to_another_connection(worker):
    from proxy.sqlite_worker import CHECKPOINT_JOBS
    assert await worker.run(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
    for n in range(CHECKPOINT_JOBS):
        await worker.run(_insert(n))
    assert worker.checkpoints == 1
    await worker.close()
    assert _rows(worker.path) == list(range(CHECKPOINT_JOBS))
