"""The operators' reads from the SQLite state: `edge_event_ids` (events by visitor
and by time), `edge_outbox` (their deliveries, and the event when a row holds it),
`edge_counts` (the funnel; the rules' hits) and `edge_sink_hours`.

Reads only, on their own connection in a reading `SqliteWorker` (no transaction):
WAL readers never wait for the outbox's writer, and it never waits for them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from proxy.conversions.outbox import ROW_FIELDS, OutboxRow, decode_row
from proxy.ops.views import EventRecord, record_from
from proxy.sqlite_worker import SqliteWorker
from proxy.state import json_param

T = TypeVar("T")
_EVENTS = ("SELECT event_id, event, result FROM edge_event_ids WHERE event IS NOT NULL {}"
           " ORDER BY created_at DESC LIMIT ?")
# By the idempotency key's unique index ("<event_id>:<sink>"): no index of its own to
# keep up on every submit.
_ROWS = (f"SELECT {', '.join('o.' + f for f in ROW_FIELDS)} FROM json_each(?) AS e"
         " JOIN edge_outbox AS o ON o.idempotency_key > e.value || ':'"
         " AND o.idempotency_key < e.value || ';' ORDER BY o.id")


class SqliteReads:
    def __init__(self, path: str) -> None:
        self.path = path
        self._worker: SqliteWorker | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._worker is None:        # at the first read: the file may be new until then
            self._worker = SqliteWorker(self.path, name="ops-reads", writes=False)
        return await self._worker.run(fn)

    async def events_of(self, visitor: str, limit: int) -> list[EventRecord]:
        return await self._run(lambda c: _records(c, _EVENTS.format("AND visitor = ?"),
                                                  (visitor, limit)))

    async def recent_events(self, limit: int) -> list[EventRecord]:
        return await self._run(lambda c: _records(c, _EVENTS.format(""), (limit,)))

    async def funnel(self, by: str, since_day: str) -> list[tuple[str, str, str, int]]:
        sql = "SELECT day, key, step, n FROM edge_counts WHERE by = ? AND day >= ?"
        return await self._run(lambda c: [tuple(r) for r in c.execute(sql, (by, since_day))])

    async def sink_hours(self, since_hour: int) -> list[tuple[str, int, int, int, int]]:
        sql = ("SELECT sink, hour, sent, retried, dead FROM edge_sink_hours WHERE hour >= ?"
               " ORDER BY hour, sink")
        return await self._run(lambda c: [tuple(r) for r in c.execute(sql, (since_hour,))])

    async def rule_hits(self) -> dict[str, tuple[str, int, float]]:
        sql = "SELECT key, step, n, last FROM edge_counts WHERE by = 'rule' AND day = ''"
        return await self._run(lambda c: {r[0]: (r[1], r[2], r[3]) for r in c.execute(sql)})

    async def close(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker.close()


def _records(c: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[EventRecord]:
    found = c.execute(sql, params).fetchall()
    rows: dict[str, list[OutboxRow]] = {}
    for values in c.execute(_ROWS, (json_param([f[0] for f in found]),)):
        row = decode_row(values)
        rows.setdefault(row.event.event_id, []).append(row)
    # An event that went to a sink is kept in its rows only; gone with them (sent, purged).
    return [record_from(event, result, rows.get(eid, []))
            for eid, event, result in found if event or eid in rows]
