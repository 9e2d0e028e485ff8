"""What the outboxes record for the operators, read back through `ops.reads`, on a real
SQLite file and a real redis-server: the network's last answer per row, per-hour
outcomes, rule hits, events by visitor and by time, the funnel's event counters, and
re-queueing one dead letter."""

from __future__ import annotations

import time

import pytest

from proxy.config.model import Sink
from proxy.conversions import funnel
from proxy.conversions.events import Event
from proxy.conversions.outbox import hour_of
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.states import RowState
from proxy.metrics import Metrics
from proxy.ops.reads import open_reads

pytest_plugins = ["redis_server"]

HOOK = Sink("hook", "webhook", url="http://h.example/", secret="s", marketing=False)
META = Sink("meta", "meta", pixel_id="1", access_token="x", marketing=False)
OWNER = "worker-1"


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request, tmp_path):
    clock = Clock()
    if request.param == "redis":
        outbox = RedisOutbox(request.getfixturevalue("redis_url"), metrics=Metrics(),
                             clock=clock, prefix=request.getfixturevalue("redis_prefix"))
    else:
        outbox = SqliteOutbox(str(tmp_path / "state.db"), metrics=Metrics(), clock=clock)
    reads = open_reads(outbox)
    yield outbox, reads, clock
    await reads.close()
    await outbox.close()


def event(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "links_clicked_id": "v" * 16, "job_id": "7",
            "job_name": "Nurse", "click_ids": {"gclid": "G"}, "rule": "apply"}
    base.update(kw)
    return Event(**base)


async def test_marks_keep_the_answer_and_count_per_hour(store) -> None:
    outbox, reads, clock = store
    e = event()
    await outbox.submit(e, [HOOK, META], consent=True)
    rows = {r.sink: r for r in await outbox.lease("hook", OWNER, 10, 60)
            + await outbox.lease("meta", OWNER, 10, 60)}
    assert await outbox.mark_retry([rows["hook"].id], OWNER, 30.0, "HTTP 503", 503,
                                   "busy " * 200) == 1
    assert await outbox.mark_dead([rows["meta"].id], OWNER, "HTTP 400", '{"error": 1}', 400)
    hook = await outbox.get(rows["hook"].id)
    assert hook is not None and hook.state is RowState.RETRY and hook.last_code == 503
    assert hook.last_body == ("busy " * 200)[:500] and hook.next_attempt_at == clock.t + 30
    clock.t += 31
    (leased,) = await outbox.lease("hook", OWNER, 10, 60)
    assert await outbox.mark_sent([leased.id], OWNER, 201) == 1
    sent = await outbox.get(leased.id)
    assert sent is not None and sent.last_code == 201 and not sent.last_body
    assert sent.attempts == 2 and sent.updated_at == clock.t

    hours = await reads.sink_hours(hour_of(clock.t) - 3600)
    totals = {(s, k): 0 for s in ("hook", "meta") for k in ("sent", "retried", "dead")}
    for sink, hour, sent_n, retried, dead in hours:
        assert hour % 3600 == 0
        for k, n in (("sent", sent_n), ("retried", retried), ("dead", dead)):
            totals[(sink, k)] += n
    assert totals == {("hook", "sent"): 1, ("hook", "retried"): 1, ("hook", "dead"): 0,
                      ("meta", "sent"): 0, ("meta", "retried"): 0, ("meta", "dead"): 1}

    (record,) = await reads.events_of(e.links_clicked_id, 10)
    assert record.event == e and record.outcomes == {"hook": "queued", "meta": "queued"}
    assert {r.sink: r.state for r in record.rows} == {"hook": RowState.SENT,
                                                      "meta": RowState.DEAD}


async def test_one_dead_letter_is_requeued_alone(store) -> None:
    outbox, _, _ = store
    for i in range(2):
        await outbox.submit(event(links_clicked_id=f"{i}" * 16), [HOOK], consent=True)
    rows = await outbox.lease("hook", OWNER, 10, 60)
    await outbox.mark_dead([r.id for r in rows], OWNER, "HTTP 400", "no", 400)
    assert await outbox.retry_dead(row_id=rows[1].id) == 1
    assert await outbox.retry_dead(row_id=rows[1].id) == 0        # not dead any more
    assert [r.id for r in await outbox.list_rows(dead=True)] == [rows[0].id]
    back = await outbox.get(rows[1].id)
    assert back is not None and back.state is RowState.PENDING and back.attempts == 0


async def test_events_rules_and_the_funnel_count_each_new_submit_once(store) -> None:
    outbox, reads, clock = store
    first = event(name="ConversationStart", rule="form")
    await outbox.submit(first, [HOOK], consent=True)
    await outbox.submit(first, [HOOK], consent=True)                  # the same event_id
    clock.t += 1
    applied = event(links_clicked_id="w" * 16, click_ids={})
    await outbox.submit(applied, [HOOK], consent=True)
    clock.t += 1
    await outbox.submit(event(links_clicked_id="w" * 16, click_ids={}), [HOOK],
                        consent=True)                                  # deduped
    clock.t += 1
    await outbox.submit(event(links_clicked_id="p" * 16, preview=True), [META], consent=True)

    recent = await reads.recent_events(10)
    assert [r.event.links_clicked_id for r in recent] == ["p" * 16, "w" * 16, "w" * 16,
                                                          "v" * 16]
    assert recent[1].outcomes == {"hook": "deduped"} and recent[1].rows == []
    assert [r.event.event_id for r in await reads.recent_events(1)] == [recent[0].event.event_id]
    hits = await reads.rule_hits()
    assert hits == {"form": ("ConversationStart", 1, clock.t - 3),
                    "apply": ("ApplicationCompleted", 3, clock.t)}   # deduped and preview too
    cells = await reads.funnel("source", funnel.first_day(1, clock.t))
    assert sorted(cells) == sorted([
        (funnel.day_of(clock.t), "gclid", "ConversationStart", 1),
        (funnel.day_of(clock.t), "direct", "ApplicationCompleted", 1)])
    jobs = await reads.funnel("job", funnel.first_day(1, clock.t))
    assert sorted(c[1:] for c in jobs) == [("Nurse", "ApplicationCompleted", 1),
                                          ("Nurse", "ConversationStart", 1)]


async def test_hours_are_read_by_the_outbox_clock(store) -> None:
    """The per-hour counts are read by the clock that marked them: an hour that this
    host's clock has not reached yet (Redis's clock ahead of it) is still shown."""
    outbox, reads, clock = store
    clock.t = hour_of(time.time()) + 3 * 3600 + 5
    await outbox.submit(event(), [HOOK], consent=True)
    (row,) = await outbox.lease("hook", OWNER, 10, 60)
    assert await outbox.mark_sent([row.id], OWNER, 200) == 1
    hours = await reads.sink_hours(hour_of(clock.t) - 3600)
    assert [(s, h, n) for s, h, n, _, _ in hours] == [("hook", hour_of(clock.t), 1)]
