"""The outbox's writer process, real SQLite and a real child: what a kill at each moment
leaves, a group's failures kept apart, the file shared with other writers, and the
child ending with its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from proxy.attribution.journeys import JourneyStore
from proxy.attribution.visit import ClickId, Visit
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.metrics import Metrics
from proxy.writer_process import WriterDied

TALROO = Sink("talroo", "talroo")
META = Sink("meta", "meta", pixel_id="1", access_token="t")


def ev(event_id: str, visitor: str | None = None) -> Event:
    return Event("ApplicationCompleted", event_id=event_id, links_clicked_id=visitor or event_id,
                 job_id="42", click_ids={"tlr_sid": "x"})


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[SqliteOutbox]:
    b = SqliteOutbox(str(tmp_path / "state.db"), metrics=Metrics())
    await b.start()
    yield b
    await b.close()


def other(box: SqliteOutbox) -> sqlite3.Connection:
    """Another connection to the file, as another process would see it."""
    return sqlite3.connect(box.path, timeout=30, isolation_level=None)


def stored(box: SqliteOutbox) -> dict[str, list]:
    c = other(box)
    try:
        return {t: sorted(c.execute(f"SELECT event_id FROM {t}").fetchall())
                for t in ("edge_outbox", "edge_event_ids", "edge_dedupe")}
    finally:
        c.close()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pid: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < end, f"process {pid} still running"
        await asyncio.sleep(0.05)


async def in_one_group(box: SqliteOutbox, events: list[Event]) -> list[asyncio.Future]:
    """Submit `events` while another connection holds the write lock, so the child,
    once it has the lock, takes them all into one transaction."""
    lock = other(box)
    lock.execute("BEGIN IMMEDIATE")
    subs = [asyncio.ensure_future(box.submit(e, [TALROO, META], consent=True)) for e in events]
    await asyncio.sleep(0.2)            # sent, and the child waiting for the lock
    assert not any(s.done() for s in subs)
    lock.execute("COMMIT")
    lock.close()
    return subs


async def test_submits_are_written_by_a_child_process(box):
    pid = box.writer.pid
    assert pid is not None and pid != os.getpid()
    assert psutil.Process(pid).ppid() == os.getpid()
    r = await box.submit(ev("a"), [TALROO], consent=True)
    assert r.queued == ("talroo",) and box.writer.pid == pid
    assert stored(box)["edge_outbox"] == [("a",)]


async def test_an_acknowledged_submit_survives_a_kill_of_the_writer_right_after(box):
    r = await box.submit(ev("a"), [TALROO, META], consent=True)
    assert set(r.queued) == {"talroo", "meta"}
    pid = box.writer.pid
    os.kill(pid, signal.SIGKILL)
    await wait_gone(pid)
    while box.writer.pid is not None:       # the parent has read its EOF
        await asyncio.sleep(0.01)
    assert stored(box) == {"edge_outbox": [("a",), ("a",)], "edge_event_ids": [("a",)],
                           "edge_dedupe": [("a",)]}
    # The next submit starts another writer; the first is remembered, not counted twice.
    again = await box.submit(ev("a"), [TALROO, META], consent=True)
    assert again.duplicate and box.writer.pid != pid and box.writer.starts == 2
    assert len(stored(box)["edge_outbox"]) == 2


async def test_a_writer_killed_mid_batch_fails_its_submits_and_leaves_nothing(box):
    # A trigger that keeps the child inside its transaction, rows already inserted.
    c = other(box)
    c.execute("CREATE TABLE slow (n INTEGER)")
    c.executemany("INSERT INTO slow VALUES (?)", [(i,) for i in range(1000)])
    c.execute("CREATE TRIGGER slow_down AFTER INSERT ON edge_outbox WHEN NEW.event_id = 's'"
              " BEGIN SELECT sum(a.n * b.n * d.n) FROM slow a, slow b, slow d; END")
    c.close()
    subs = await in_one_group(box, [ev("a"), ev("s"), ev("b")])
    probe = other(box)
    probe.execute("PRAGMA busy_timeout=0")
    end = time.monotonic() + 15
    while True:                  # until the child holds the write lock
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            assert "locked" in str(e)
            break
        probe.execute("ROLLBACK")
        assert time.monotonic() < end, "the child never took the write lock"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert not any(s.done() for s in subs)
    pid = box.writer.pid
    os.kill(pid, signal.SIGKILL)
    for s in subs:
        with pytest.raises(WriterDied):
            await s
    await wait_gone(pid)
    assert stored(box) == {"edge_outbox": [], "edge_event_ids": [], "edge_dedupe": []}
    probe.execute("PRAGMA busy_timeout=30000")
    probe.execute("DROP TRIGGER slow_down")
    probe.close()
    results = await asyncio.gather(*(box.submit(ev(i), [TALROO], consent=True)
                                     for i in ("a", "s", "b")))
    assert [r.duplicate for r in results] == [False] * 3
    assert all(r.queued == ("talroo",) for r in results)
    assert stored(box)["edge_event_ids"] == [("a",), ("b",), ("s",)]


async def test_one_failing_submit_does_not_undo_the_others_in_its_group(box):
    c = other(box)
    c.execute("CREATE TRIGGER refuse BEFORE INSERT ON edge_outbox WHEN NEW.event_id = 'bad'"
              " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    c.close()
    before = box.commits
    subs = await in_one_group(box, [ev("a"), ev("bad"), ev("b")])
    assert (await subs[0]).queued and (await subs[2]).queued
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        await subs[1]
    assert box.commits - before == 1
    assert stored(box)["edge_event_ids"] == [("a",), ("b",)]
    assert len(stored(box)["edge_outbox"]) == 4


async def test_a_writer_that_cannot_open_the_file_fails_the_start(tmp_path):
    box = SqliteOutbox(str(tmp_path / "state.db"))
    try:
        (tmp_path / "state.db").unlink()       # the child opens an existing state only
        for extra in ("state.db-wal", "state.db-shm"):
            (tmp_path / extra).unlink(missing_ok=True)
        with pytest.raises(WriterDied):
            await box.start()
        with pytest.raises(WriterDied):        # not started again at once
            await box.submit(ev("a"), [TALROO], consent=True)
    finally:
        await box.close()


async def test_close_lets_the_writer_answer_then_it_exits(box):
    subs = [asyncio.ensure_future(box.submit(ev(f"e{i}"), [TALROO], consent=True))
            for i in range(20)]
    await asyncio.sleep(0)
    pid = box.writer.pid
    await box.close()
    assert all(s.result().queued == ("talroo",) for s in subs)
    await wait_gone(pid)
    assert len(stored(box)["edge_outbox"]) == 20


async def test_writers_of_two_processes_and_the_journeys_share_the_file(tmp_path):
    """Two outboxes (two workers' writer processes) and the journeys' writer thread on
    one file, all writing at once: every write lands, none meets a locked database."""
    path = str(tmp_path / "state.db")
    boxes = [SqliteOutbox(path), SqliteOutbox(path)]
    journeys = JourneyStore(path)
    await journeys.start()
    try:
        async def submits(b: SqliteOutbox, tag: str) -> None:
            for i in range(0, 150, 10):
                await asyncio.gather(*(b.submit(ev(f"{tag}{j}"), [TALROO, META], consent=True)
                                       for j in range(i, i + 10)))

        async def visits() -> None:
            for i in range(150):
                journeys.record(Visit(
                    links_clicked_id=f"j{i}", new_visitor=True,
                    click_ids={"gclid": ClickId(f"g{i}", time.time())}, captured=["gclid"],
                    rejected=[], cookie_rejected=False, consent=True, fbc=None, fbp=None,
                    set_cookies=[], upstream_query=None))
                if i % 10 == 0:
                    await journeys.flush()
                await asyncio.sleep(0)
            await journeys.flush()

        await asyncio.gather(submits(boxes[0], "x"), submits(boxes[1], "y"), visits())
        assert boxes[0].writer.pid != boxes[1].writer.pid
        c = sqlite3.connect(path)
        assert c.execute("SELECT count(*) FROM edge_event_ids").fetchone()[0] == 300
        assert c.execute("SELECT count(*) FROM edge_outbox").fetchone()[0] == 600
        assert await journeys.get("j149") is not None
    finally:
        await journeys.stop()
        for b in boxes:
            await b.close()


def test_the_writer_exits_when_its_parent_is_killed(tmp_path):
    code = textwrap.dedent(f"""
        import asyncio, sys
        from proxy.config.model import Sink
        from proxy.conversions.events import Event
        from proxy.conversions.sqlite_outbox import SqliteOutbox
        async def main():
            box = SqliteOutbox({str(tmp_path / "state.db")!r})
            await box.submit(Event("Hire", links_clicked_id="v", click_ids={{"tlr_sid": "x"}}),
                             [Sink("talroo", "talroo")], consent=True)
            print(box.writer.pid, flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        assert parent.stdout is not None
        writer = int(parent.stdout.readline())
        assert psutil.Process(writer).ppid() == parent.pid
        parent.kill()
        parent.wait(timeout=30)
        asyncio.run(wait_gone(writer))          # EOF on its stdin: no orphan left
    finally:
        parent.kill()
        parent.wait()


async def test_a_burst_larger_than_the_pipe_is_written_in_shared_commits(box):
    events = [Event("ApplicationCompleted", event_id=f"e{i}", links_clicked_id=f"v{i}",
                    job_id="42", click_ids={"tlr_sid": "x"}, fields={"note": "x" * 2000})
              for i in range(600)]           # ~1.3 MB of frames: the pipe holds 64 KB
    before = box.commits
    results = await asyncio.gather(*(box.submit(e, [TALROO], consent=True) for e in events))
    assert all(r.queued == ("talroo",) for r in results)
    assert len(stored(box)["edge_outbox"]) == 600
    assert box.commits - before < 600 / 4
