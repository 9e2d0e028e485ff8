"""The SQLite outbox's submit, a batch at a time (`SqliteWorker.run_many`).

The submits that queue up while the writer commits are written by a handful of
statements whatever their number: one lookup of their event ids and dedupe keys,
then one insert into a TEMP view whose trigger writes every table from the batch
(JSON parameters), so one statement does the writes. Each sqlite3 step lets go of
the GIL, and behind a busy event loop the writer thread waits up to the switch
interval to take it back: per batch, not per submit.
The outcome of every submit is what running them one after the other would give
(a repeated event id within the batch is a duplicate, a second conversion of one
visitor, event and job is deduped).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.conversions.events import Event
from proxy.conversions.funnel import SQL_ADD, Cell, event_cells, rule_cell
from proxy.conversions.outbox import MAX_EVENT_AGE, SubmitResult, idempotency_key
from proxy.conversions.states import Outcome, RowState
from proxy.state import json_param


@dataclass(frozen=True, slots=True)
class Submit:
    event: Event
    plan: dict[str, Outcome]
    now: float


def _col(i: int) -> str:
    return f"json_extract(value, '$[{i}]')"


_LOOKUP = (
    "SELECT json_group_array(json_array("
    f" (SELECT CAST(result AS TEXT) FROM edge_event_ids WHERE event_id = {_col(0)}),"
    f" (SELECT 1 FROM edge_dedupe WHERE visitor = {_col(1)} AND event = {_col(2)}"
    f" AND job = {_col(3)} AND expires_at > {_col(4)}))) FROM json_each(?)")
_WRITE = "INSERT INTO edge_submit (dedupe, rows, ids, cells, now) VALUES (?, ?, ?, ?, ?)"
_VIEW = ("CREATE TEMP VIEW IF NOT EXISTS edge_submit (dedupe, rows, ids, cells, now)"
         " AS SELECT NULL, NULL, NULL, NULL, NULL")
_TRIGGER = f"""CREATE TEMP TRIGGER IF NOT EXISTS edge_submit_write
INSTEAD OF INSERT ON edge_submit BEGIN
    INSERT OR REPLACE INTO edge_dedupe (visitor, event, job, expires_at, event_id)
    SELECT {_col(0)}, {_col(1)}, {_col(2)}, {_col(3)}, {_col(4)} FROM json_each(NEW.dedupe);
    INSERT OR IGNORE INTO edge_outbox (sink, event_id, idempotency_key, event, state,
        next_attempt_at, created_at, expires_at, updated_at)
    SELECT {_col(0)}, {_col(1)}, {_col(2)}, CAST({_col(3)} AS BLOB), '{RowState.PENDING.value}',
        {_col(4)}, {_col(4)}, {_col(5)}, {_col(4)} FROM json_each(NEW.rows);
    INSERT INTO edge_event_ids (event_id, result, created_at, visitor, event)
    SELECT {_col(0)}, CAST({_col(1)} AS BLOB), {_col(2)}, {_col(3)}, CAST({_col(4)} AS BLOB)
    FROM json_each(NEW.ids);
    {SQL_ADD.replace("?1", "NEW.cells").replace("?2", "NEW.now")};
END"""


def init_submit(c: sqlite3.Connection) -> None:
    """The view and trigger `submit_many` writes through (TEMP: this connection's)."""
    c.execute(_VIEW)
    c.execute(_TRIGGER)


def submit_many(c: sqlite3.Connection, batch: list[Submit]) -> list[SubmitResult]:
    keys = [(s.event.links_clicked_id, s.event.name, s.event.job_id or "") for s in batch]
    found = orjson.loads(c.execute(_LOOKUP, (json_param(
        [(s.event.event_id, *key, s.now) for s, key in zip(batch, keys)]),)).fetchone()[0])
    results: list[SubmitResult] = []
    seen: dict[str, str] = {}                     # event id -> result, this batch
    fired: dict[tuple[Any, ...], float] = {}      # dedupe key -> expiry, this batch
    dedupe: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    ids: list[tuple[Any, ...]] = []
    cells: list[Cell] = []
    for s, key, (stored, hit) in zip(batch, keys, found):
        event, plan, now = s.event, s.plan, s.now
        stored = seen.get(event.event_id, stored)
        if stored is not None:
            results.append(SubmitResult.from_json(stored, duplicate=True))
            continue
        hit = hit or fired.get(key, 0.0) > now
        if hit and event.links_clicked_id:
            plan = {sink: Outcome.DEDUPED for sink in plan}
        queued = [sink for sink, outcome in plan.items() if outcome is Outcome.QUEUED]
        if queued and event.links_clicked_id:
            # Only a conversion that went somewhere counts as "already fired".
            fired[key] = now + event.dedupe_hours * 3600.0
            dedupe.append((*key, fired[key], event.event_id))
        body = event.to_json().decode()
        if queued:
            expires = min(event.event_time, now) + MAX_EVENT_AGE
            rows += [(sink, event.event_id, idempotency_key(event.event_id, sink), body, now,
                      expires) for sink in queued]
        result = SubmitResult(event.event_id, plan)
        result_json = result.to_json().decode()
        seen[event.event_id] = result_json
        # The event itself only when no row carries it ("": see its rows), so a submit
        # writes it once.
        ids.append((event.event_id, result_json, now, event.links_clicked_id,
                    "" if queued else body))
        cells += rule_cell(event) + ([] if result.deduped else event_cells(event, now))
        results.append(result)
    if ids:
        c.execute(_WRITE, (json_param(dedupe), json_param(rows), json_param(ids),
                           json_param(cells), max(s.now for s in batch)))
    return results
