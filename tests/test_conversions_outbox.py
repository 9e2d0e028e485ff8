"""The outboxes on a real SQLite file and a real redis-server: submit (dedupe, consent,
requires, idempotency), leases, states, several outboxes on one store.

The cases every outbox must pass run against both (`boxes` is parametrized); what only
SQLite does is here too, what only Redis does is in `test_redis_outbox`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.outbox import MAX_EVENT_AGE, Outbox, observe_backlog
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.states import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    Outcome,
    RowState,
    next_state,
)
from proxy.metrics import Metrics

pytest_plugins = ["redis_server"]

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
TALROO = Sink("talroo", "talroo", url="http://t.example/conversion2.php")
META = Sink("meta", "meta", pixel_id="1", access_token="x")
ATS = Sink("ats", "webhook", url="http://h.example/", marketing=False)
APPCAST = Sink("appcast", "http", url="http://a.example/?c={click.ccuid}", requires=("ccuid",))
ALL = [TALROO, META, ATS, APPCAST]


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=BACKENDS)
async def boxes(request, tmp_path):
    """Opens outboxes on one store, each another process or host, on one clock."""
    clock = Clock()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        def make() -> Outbox:
            return RedisOutbox(url, metrics=Metrics(), clock=clock, prefix=prefix)
    else:
        path = str(tmp_path / "state.db")

        def make() -> Outbox:
            return SqliteOutbox(path, metrics=Metrics(), clock=clock)
    made: list[Outbox] = []

    def open_box() -> Outbox:
        ob = make()
        ob.clock_ = clock
        made.append(ob)
        return ob
    yield open_box
    for ob in made:
        await ob.close()


@pytest.fixture
def box(boxes):
    return boxes()


@pytest.fixture
def twin(box, boxes):
    """A second outbox on the same store: another process or host."""
    return boxes()


@pytest.fixture
async def sqlite_box(tmp_path):
    clock = Clock()
    ob = SqliteOutbox(str(tmp_path / "state.db"), metrics=Metrics(), clock=clock)
    ob.clock_ = clock
    yield ob
    await ob.close()


def ev(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "event_time": 1_700_000_000.0,
            "links_clicked_id": "v1", "job_id": "42",
            "click_ids": {"tlr_sid": "11111111-2222-3333-4444-555555555555"}}
    base.update(kw)
    return Event(**base)


def count(box: Outbox, sink: str, outcome: str) -> float:
    return box.metrics.registry.get_sample_value(
        "edge_conversions_total", {"sink": sink, "outcome": outcome}) or 0.0


def test_state_table_allows_only_the_drawn_moves():
    assert next_state(RowState.PENDING, Action.LEASE) is RowState.LEASED
    assert next_state(RowState.LEASED, Action.SEND) is RowState.SENT
    assert next_state(RowState.RETRY, Action.LEASE) is RowState.LEASED
    assert next_state(RowState.DEAD, Action.REQUEUE) is RowState.PENDING
    for action, (sources, _) in TRANSITIONS.items():
        for state in set(RowState) - sources:
            with pytest.raises(InvalidTransition):
                next_state(state, action)
    # nothing leaves `sent`
    assert not any(RowState.SENT in src for src, _ in TRANSITIONS.values())


def test_event_json_round_trip_ignores_unknown_keys():
    e = ev(fields={"salary": "10"}, fbc="fb.1.1.x")
    assert Event.from_json(e.to_json()) == e
    import orjson
    d = orjson.loads(e.to_json()) | {"added_later": 1}
    assert Event.from_dict(d) == e


async def test_submit_routes_consent_and_requires_and_counts(box):
    r = await box.submit(ev(), ALL, consent=True)
    assert dict(r.outcomes) == {"talroo": Outcome.QUEUED, "meta": Outcome.QUEUED,
                                "ats": Outcome.QUEUED, "appcast": Outcome.SKIPPED}
    assert r.queued == ("talroo", "meta", "ats")
    r2 = await box.submit(ev(links_clicked_id="v2", click_ids={}), ALL, consent=False)
    assert dict(r2.outcomes) == {"talroo": Outcome.SUPPRESSED, "meta": Outcome.SUPPRESSED,
                                 "ats": Outcome.QUEUED, "appcast": Outcome.SUPPRESSED}
    r3 = await box.submit(ev(links_clicked_id="v3", click_ids={}), ALL, consent=True)
    assert r3.outcomes["talroo"] is Outcome.SKIPPED      # talroo implicitly requires tlr_sid
    assert count(box, "talroo", "queued") == 1 and count(box, "talroo", "skipped") == 1
    assert count(box, "meta", "suppressed") == 1 and count(box, "appcast", "skipped") == 2
    assert await box.pending_count() == 3 + 1 + 2
    counts = await box.counts()
    assert counts["meta"]["pending"] == 2 and counts["ats"]["pending"] == 3
    assert "appcast" not in counts


async def test_dedupe_once_per_visitor_event_and_job_within_the_window(box):
    first = await box.submit(ev(dedupe_hours=1), [TALROO, META], consent=True)
    again = await box.submit(ev(dedupe_hours=1), [TALROO, META], consent=True)
    assert first.queued == ("talroo", "meta")
    assert set(again.outcomes.values()) == {Outcome.DEDUPED} and not again.duplicate
    assert again.deduped and not first.deduped
    other_job = await box.submit(ev(job_id="43"), [TALROO], consent=True)
    other_visitor = await box.submit(ev(links_clicked_id="v9"), [TALROO], consent=True)
    assert other_job.queued == other_visitor.queued == ("talroo",)
    assert count(box, "talroo", "deduped") == 1
    box.clock_.t += 3601                     # window over: counts again
    assert (await box.submit(ev(dedupe_hours=1), [TALROO], consent=True)).queued == ("talroo",)


async def test_dedupe_keys_of_colliding_looking_parts_stay_apart(box):
    a = await box.submit(ev(links_clicked_id="v:1", job_id="2"), [TALROO], consent=True)
    b = await box.submit(ev(links_clicked_id="v", job_id="1:2"), [TALROO], consent=True)
    assert a.queued == b.queued == ("talroo",)


async def test_nothing_queued_means_nothing_remembered_for_dedupe(box):
    await box.submit(ev(), [META], consent=False)                # suppressed
    assert (await box.submit(ev(), [META], consent=True)).queued == ("meta",)


async def test_same_event_id_returns_the_first_result(box):
    first = await box.submit(ev(event_id="abc"), [TALROO], consent=True)
    second = await box.submit(ev(event_id="abc", links_clicked_id="other"), [TALROO, META],
                              consent=True)
    assert second.duplicate and second.outcomes == first.outcomes
    assert await box.pending_count() == 1
    assert count(box, "talroo", "queued") == 1 and count(box, "meta", "queued") == 0


async def test_lease_takes_due_rows_once_and_marks_need_the_owner(box):
    for i in range(5):
        await box.submit(ev(links_clicked_id=f"v{i}"), [TALROO, META], consent=True)
    a = await box.lease("talroo", "A", 3, 60)
    b = await box.lease("talroo", "B", 10, 60)
    assert [r.id for r in a] == sorted(r.id for r in a) and len(a) == 3 and len(b) == 2
    assert max(r.id for r in a) < min(r.id for r in b)        # oldest first
    assert all(r.state is RowState.LEASED and r.attempts == 1 for r in a + b)
    assert all(r.lease_owner == "A" and r.lease_expires_at == box.clock_.t + 60 for r in a)
    assert await box.lease("talroo", "C", 10, 60) == []
    assert await box.mark_sent([a[0].id], "B") == 0          # not B's row
    assert await box.mark_sent([a[0].id], "A") == 1
    assert await box.mark_sent([a[0].id], "A") == 0          # sent is final
    assert await box.mark_retry([a[1].id], "A", 30, "HTTP 500") == 1
    assert await box.mark_dead([a[2].id], "A", "HTTP 400", "bad") == 1
    assert await box.lease("talroo", "C", 10, 60) == []      # the retry is not due yet
    box.clock_.t += 30
    again = await box.lease("talroo", "C", 10, 60)
    assert [(r.id, r.attempts, r.last_error) for r in again] == [(a[1].id, 2, "HTTP 500")]
    assert len(await box.lease("meta", "C", 10, 60)) == 5     # other sink, own queue
    counts = await box.counts()
    assert counts["talroo"] == {"pending": 0, "leased": 3, "sent": 1, "retry": 0, "dead": 1}
    assert await box.pending_count() == 3 + 5


async def test_ids_past_nine_digits_of_ties_still_lease_oldest_first(box):
    for i in range(12):                      # ids 1..12, one due time: "10" < "9" as text
        await box.submit(ev(links_clicked_id=f"v{i}"), [TALROO], consent=True)
    first = await box.lease("talroo", "A", 9, 60)
    assert [r.id for r in first] == list(range(1, 10))


async def test_an_expired_lease_is_taken_by_another_owner(box, twin):
    await box.submit(ev(), [TALROO], consent=True)
    (row,) = await box.lease("talroo", "crashed", 10, 5)
    assert await twin.lease("talroo", "B", 10, 60) == []
    box.clock_.t += 5
    (taken,) = await twin.lease("talroo", "B", 10, 60)
    assert taken.id == row.id and taken.lease_owner == "B" and taken.attempts == 2
    assert await box.mark_sent([row.id], "crashed") == 0
    assert await twin.mark_sent([row.id], "B") == 1


async def test_release_returns_leases_to_the_queue(box):
    await box.submit(ev(), [TALROO, META], consent=True)
    await box.lease("talroo", "A", 10, 60)
    await box.lease("meta", "other", 10, 60)
    assert await box.release("A") == 1
    (row,) = await box.lease("talroo", "B", 10, 60)
    assert row.attempts == 1
    assert await box.lease("meta", "B", 10, 60) == []        # not A's to release


async def test_rows_older_than_seven_days_are_given_up(box):
    await box.submit(ev(event_time=box.clock_.t - MAX_EVENT_AGE + 10), [TALROO], consent=True)
    await box.submit(ev(links_clicked_id="fresh"), [TALROO], consent=True)
    box.clock_.t += 10
    rows = await box.lease("talroo", "A", 10, 60)
    assert [r.event.links_clicked_id for r in rows] == ["fresh"]
    (dead,) = await box.list_rows(dead=True)
    assert dead.last_error == "expired" and count(box, "talroo", "dead") == 1
    assert await box.retry_dead() == 0                        # still too old to send
    assert await box.pending_count() == 1


async def test_a_leased_row_past_seven_days_is_given_up(box):
    await box.submit(ev(), [TALROO], consent=True)
    (row,) = await box.lease("talroo", "A", 10, 60)
    box.clock_.t += MAX_EVENT_AGE
    assert await box.lease("talroo", "B", 10, 60) == []
    assert await box.mark_sent([row.id], "A") == 0
    assert (await box.get(row.id)).state is RowState.DEAD


async def test_retry_dead_requeues_dead_letters(box):
    await box.submit(ev(), [TALROO, META], consent=True)
    (row,) = await box.lease("talroo", "A", 10, 60)
    (mrow,) = await box.lease("meta", "A", 10, 60)
    await box.mark_dead([row.id], "A", "HTTP 400", '{"error": "bad"}')
    await box.mark_dead([mrow.id], "A", "HTTP 400", "")
    dead = await box.list_rows(dead=True)
    assert [(d.state, d.dead_body, d.last_error) for d in dead] == [
        (RowState.DEAD, '{"error": "bad"}', "HTTP 400"), (RowState.DEAD, "", "HTTP 400")]
    assert await box.pending_count() == 0
    assert await box.retry_dead("talroo") == 1
    (row,) = await box.lease("talroo", "A", 10, 60)
    assert row.attempts == 1 and row.dead_body is None
    assert [d.sink for d in await box.list_rows(dead=True)] == ["meta"]
    assert await box.retry_dead() == 1 and await box.list_rows(dead=True) == []


async def test_list_rows_shows_what_is_still_owed(box):
    await box.submit(ev(), [TALROO, META], consent=True)
    await box.lease("talroo", "A", 10, 60)
    rows = await box.list_rows()
    assert [(r.sink, r.state) for r in rows] == [("talroo", RowState.LEASED),
                                                 ("meta", RowState.PENDING)]
    assert len(await box.list_rows(limit=1)) == 1


async def test_oldest_pending_age_follows_the_oldest_row_still_owed(box):
    assert await box.oldest_pending_age() == 0
    await box.submit(ev(), [TALROO], consent=True)
    box.clock_.t += 100
    await box.submit(ev(links_clicked_id="v2", event_time=box.clock_.t), [META], consent=True)
    box.clock_.t += 20
    assert await box.oldest_pending_age() == 120
    (row,) = await box.lease("talroo", "A", 10, 60)       # leased is still owed
    assert await box.oldest_pending_age() == 120
    await box.mark_sent([row.id], "A")
    assert await box.oldest_pending_age() == 20
    (mrow,) = await box.lease("meta", "A", 10, 60)
    await box.mark_dead([mrow.id], "A", "HTTP 400")        # a dead letter is owed nothing
    assert await box.oldest_pending_age() == 0
    await box.retry_dead()
    assert await box.oldest_pending_age() == 20
    metrics = box.metrics
    await observe_backlog(box, metrics)
    assert metrics.registry.get_sample_value("edge_outbox_oldest_seconds") == 20
    assert metrics.registry.get_sample_value("edge_outbox_pending") == 1


async def test_purge_forgets_expired_dedupe_keys_and_old_sent_rows(box):
    await box.submit(ev(dedupe_hours=1), [TALROO], consent=True)
    (row,) = await box.lease("talroo", "A", 10, 60)
    await box.mark_sent([row.id], "A")
    box.clock_.t += 8 * 24 * 3600
    await box.purge()
    assert await box.counts() == {} and await box.get(row.id) is None
    assert (await box.submit(ev(event_time=box.clock_.t), [TALROO], consent=True)).queued


async def test_dedupe_and_event_ids_hold_across_outboxes(box, twin):
    first = await box.submit(ev(event_id="e1"), [TALROO], consent=True)
    assert first.queued == ("talroo",)
    again = await twin.submit(ev(event_id="e2"), [TALROO], consent=True)
    assert again.outcomes == {"talroo": Outcome.DEDUPED}
    replay = await twin.submit(ev(event_id="e1"), [TALROO], consent=True)
    assert replay.duplicate and replay.outcomes == first.outcomes


async def test_concurrent_submits_of_one_conversion_queue_it_once(box, twin):
    boxes = [box, twin] * 25
    results = await asyncio.gather(*(b.submit(ev(), [TALROO], consent=True) for b in boxes))
    assert sum(r.queued == ("talroo",) for r in results) == 1
    assert await box.pending_count() == 1


# -- SQLite only ---------------------------------------------------------------------


async def test_submit_is_durable_when_it_returns(sqlite_box):
    box = sqlite_box
    r = await box.submit(ev(), [TALROO], consent=True)
    other = sqlite3.connect(box.path)
    rows = other.execute("SELECT sink, state, idempotency_key FROM edge_outbox").fetchall()
    assert rows == [("talroo", "pending", f"{r.event_id}:talroo")]


async def hold_worker(box: SqliteOutbox) -> tuple[asyncio.Future, threading.Event]:
    """Keep the SQLite thread busy until the returned event is set: jobs queue up."""
    started, release = threading.Event(), threading.Event()

    def hold(conn):
        started.set()
        release.wait()

    held = asyncio.ensure_future(box.worker.run(hold))
    await asyncio.to_thread(started.wait)
    return held, release


async def test_concurrent_submits_share_a_commit(sqlite_box):
    box = sqlite_box
    held, release = await hold_worker(box)
    before = box.commits
    subs = [asyncio.ensure_future(box.submit(ev(links_clicked_id=f"v{i}"), [TALROO],
                                             consent=True)) for i in range(50)]
    await asyncio.sleep(0)                   # let every submit enqueue its job
    release.set()
    await held
    results = await asyncio.gather(*subs)
    assert all(r.queued == ("talroo",) for r in results)
    assert box.commits - before == 2  # the held one, then all 50 together


async def test_a_failing_job_does_not_undo_the_others_in_its_group(sqlite_box):
    box = sqlite_box

    def boom(conn):
        conn.execute("INSERT INTO edge_kv_missing VALUES (1)")

    held, release = await hold_worker(box)
    ok1 = asyncio.ensure_future(box.submit(ev(links_clicked_id="a"), [TALROO], consent=True))
    bad = asyncio.ensure_future(box.worker.run(boom))
    ok2 = asyncio.ensure_future(box.submit(ev(links_clicked_id="b"), [TALROO], consent=True))
    await asyncio.sleep(0)
    release.set()
    await held
    await ok1, await ok2
    with pytest.raises(sqlite3.OperationalError):
        await bad
    assert await box.pending_count() == 2


def test_a_submit_survives_sigkill_right_after_it_returns(tmp_path):
    db = tmp_path / "state.db"
    code = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from proxy.config.model import Sink
        from proxy.conversions.events import Event
        from proxy.conversions.sqlite_outbox import SqliteOutbox
        async def main():
            box = SqliteOutbox({str(db)!r})
            await box.submit(Event("Hire", event_id="k1", links_clicked_id="v",
                                   click_ids={{"tlr_sid": "x"}}),
                             [Sink("talroo", "talroo")], consent=True)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == -9
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT event_id, state FROM edge_outbox").fetchall() == [
        ("k1", "pending")]


async def test_sqlite_submits_are_synced_to_disk_before_they_are_acknowledged(tmp_path):
    """`synchronous=FULL` on the outbox's connection: in WAL mode `NORMAL` syncs only at
    checkpoints, and a power loss could take back a conversion already acknowledged."""
    box = SqliteOutbox(str(tmp_path / "state.db"))
    try:
        full = 2
        assert await box.worker.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) \
            == full
        assert await box.worker.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) \
            == "wal"
    finally:
        await box.close()
