"""The Redis outbox on a real redis-server: the SQLite outbox's behaviours, plus sharing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import redis

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.outbox import MAX_EVENT_AGE
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.states import Outcome, RowState
from proxy.metrics import Metrics
from proxy.state_redis import redis_secret

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.redis

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


def ev(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "event_time": 1_700_000_000.0,
            "links_clicked_id": "v1", "job_id": "42",
            "click_ids": {"tlr_sid": "11111111-2222-3333-4444-555555555555"}}
    base.update(kw)
    return Event(**base)


def count(box: RedisOutbox, sink: str, outcome: str) -> float:
    return box.metrics.registry.get_sample_value(
        "edge_conversions_total", {"sink": sink, "outcome": outcome}) or 0.0


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


async def test_dedupe_once_per_visitor_event_and_job_within_the_window(box):
    first = await box.submit(ev(dedupe_hours=1), [TALROO, META], consent=True)
    again = await box.submit(ev(dedupe_hours=1), [TALROO, META], consent=True)
    assert first.queued == ("talroo", "meta")
    assert set(again.outcomes.values()) == {Outcome.DEDUPED} and not again.duplicate
    other_job = await box.submit(ev(job_id="43"), [TALROO], consent=True)
    other_visitor = await box.submit(ev(links_clicked_id="v9"), [TALROO], consent=True)
    assert other_job.queued == other_visitor.queued == ("talroo",)
    assert count(box, "talroo", "deduped") == 1
    box.clock_.t += 3601                     # window over: counts again
    assert (await box.submit(ev(dedupe_hours=1), [TALROO], consent=True)).queued == ("talroo",)


async def test_dedupe_key_lives_in_redis_with_the_window_as_ttl(box, redis_url):
    await box.submit(ev(dedupe_hours=2), [TALROO], consent=True)
    other = redis.Redis.from_url(redis_url)
    try:
        (key,) = other.keys(box.prefix + "dedupe:*")
        assert 7_100_000 < other.pttl(key) <= 7_200_000
    finally:
        other.close()


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
    assert len(a) == 3 and len(b) == 2
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


async def test_purge_forgets_old_sent_rows_and_stale_dedupe(box):
    await box.submit(ev(dedupe_hours=1), [TALROO], consent=True)
    (row,) = await box.lease("talroo", "A", 10, 60)
    await box.mark_sent([row.id], "A")
    box.clock_.t += 8 * 24 * 3600
    await box.purge()
    assert await box.counts() == {} and await box.get(row.id) is None
    assert (await box.submit(ev(event_time=box.clock_.t), [TALROO], consent=True)).queued


async def test_dedupe_and_event_ids_hold_across_hosts(box, twin):
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
