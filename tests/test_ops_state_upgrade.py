"""A state file written by 0.1 opens as it is: the outbox and the journeys add the
columns they now keep, old rows still read, and the operators' reads answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.attribution.clickids import ClickId
from proxy.attribution.journeys import JourneyStore
from proxy.attribution.visit import Visit
from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.ops.sqlite_reads import SqliteReads

# The tables as 0.1 created them.
OLD = """
CREATE TABLE edge_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, event_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE, event BLOB NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_owner TEXT,
    lease_expires_at REAL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    updated_at REAL NOT NULL, last_error TEXT, dead_body TEXT);
CREATE TABLE edge_event_ids (
    event_id TEXT PRIMARY KEY, result BLOB NOT NULL, created_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE journeys (
    links_clicked_id TEXT PRIMARY KEY, click_ids TEXT NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, fbc TEXT, fbp TEXT);
"""
VID = "a" * 32


def visit() -> Visit:
    return Visit(VID, False, {"gclid": ClickId("G", 1.0)}, [], [], False, True, None, None,
                 [], None)


async def test_an_old_state_file_is_upgraded_in_place(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD)
        old = Event("Hire", links_clicked_id=VID)
        conn.execute("INSERT INTO edge_outbox (sink, event_id, idempotency_key, event, state,"
                     " next_attempt_at, created_at, expires_at, updated_at) VALUES"
                     " ('hook', ?, ?, ?, 'dead', 1, 1, 9e9, 1)",
                     (old.event_id, old.event_id + ":hook", old.to_json()))
        conn.execute("INSERT INTO journeys VALUES (?, '{}', 1, 1, NULL, NULL)", (VID,))
    outbox = SqliteOutbox(db)
    journeys = JourneyStore(db)
    reads = SqliteReads(db)
    try:
        (row,) = await outbox.list_rows(dead=True)
        assert row.event.event_id == old.event_id and row.last_code is None
        hook = Sink(name="hook", type="webhook", url="http://127.0.0.1:9/h", secret="s")
        fresh = Event("ApplicationCompleted", links_clicked_id=VID, rule="apply")
        assert (await outbox.submit(fresh, [hook], consent=True)).queued == ("hook",)
        (record,) = await reads.events_of(VID, 10)
        assert record.event.event_id == fresh.event_id and record.outcomes == {"hook": "queued"}
        assert await reads.rule_hits() == {"apply": ("ApplicationCompleted", 1,
                                                     record.rows[0].created_at)}
        journeys.record(visit())
        await journeys.flush()
        got = await journeys.get(VID)
        assert got is not None and got.click_ids["gclid"].value == "G" and not got.preview
        assert await journeys.ids_by_click_value("G") == [VID]
    finally:
        await journeys.stop()
        await reads.close()
        await outbox.close()
