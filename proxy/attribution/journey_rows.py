"""Journey rows: the records and the batch write the journeys' SQLite writer runs.

Apart from the store (`journeys.JourneyStore`) because the outbox's writer process
imports this module to write the journeys' slices: nothing here may pull in the
event loop's world (aiohttp and the request path), which would cost that process
some 20 MB for code it never runs.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.attribution.clickids import ClickId
from proxy.conversions.funnel import SQL_ADD, Cell, click_cells
from proxy.state import json_param


@dataclass(slots=True)
class Journey:
    links_clicked_id: str
    click_ids: dict[str, ClickId] = field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    fbc: str | None = None
    fbp: str | None = None
    preview: bool = False            # a test visitor's (once, always: kept out of the funnel)

    def merge(self, other: Journey) -> None:
        """Fold `other` (same id) into this one; the newest capture of a param wins."""
        for param, click in other.click_ids.items():
            mine = self.click_ids.get(param)
            if mine is None or click.seen_at >= mine.seen_at:
                self.click_ids[param] = click
        newer = other.last_seen >= self.last_seen
        self.fbc = (other.fbc or self.fbc) if newer else (self.fbc or other.fbc)
        self.fbp = (other.fbp or self.fbp) if newer else (self.fbp or other.fbp)
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.preview = self.preview or other.preview


@dataclass(slots=True)
class Pending:
    """A buffered journey plus every click id it carried since the last flush: a
    value replaced before the flush must still lead back to this visitor."""

    journey: Journey
    seen: dict[tuple[str, str], float]

    def add(self, journey: Journey) -> None:
        self.journey.merge(journey)
        for param, click in journey.click_ids.items():
            key = (param, click.value)
            self.seen[key] = max(click.seen_at, self.seen.get(key, click.seen_at))


# A batch is one JSON parameter and one statement per table: each sqlite3 step lets
# go of the GIL, and a writer thread that takes it back once per row waits behind
# a busy event loop for every row.
_UPSERT = """INSERT INTO journeys
    (links_clicked_id, click_ids, first_seen, last_seen, fbc, fbp, preview)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]')
    FROM json_each(?) WHERE true
    ON CONFLICT (links_clicked_id) DO UPDATE SET click_ids = excluded.click_ids,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    fbc = excluded.fbc, fbp = excluded.fbp, preview = excluded.preview"""
_UPSERT_CLICK = """INSERT INTO journey_clicks
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]')
    FROM json_each(?) WHERE true
    ON CONFLICT DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)"""
COLUMNS = "links_clicked_id, click_ids, first_seen, last_seen, fbc, fbp, preview"
_SELECT_BATCH = f"""SELECT json_group_array(json_array({COLUMNS})) FROM journeys
    WHERE links_clicked_id IN (SELECT value FROM json_each(?))"""
COLUMNS = "links_clicked_id, click_ids, first_seen, last_seen, fbc, fbp, preview"
_SELECT_BATCH = f"""SELECT json_group_array(json_array({COLUMNS})) FROM journeys
    WHERE links_clicked_id IN (SELECT value FROM json_each(?))"""


def row_to_journey(row: tuple[Any, ...]) -> Journey:
    raw = orjson.loads(row[1])
    clicks = {p: ClickId(str(c["value"]), float(c["seen_at"])) for p, c in raw.items()}
    return Journey(row[0], clicks, row[2], row[3], row[4], row[5], bool(row[6]))


def journey_to_row(j: Journey) -> tuple[Any, ...]:
    clicks = {p: {"value": c.value, "seen_at": c.seen_at} for p, c in j.click_ids.items()}
    return (j.links_clicked_id, orjson.dumps(clicks).decode(), j.first_seen, j.last_seen,
            j.fbc, j.fbp, int(j.preview))


def write_journeys(conn: sqlite3.Connection, slices: list[list[Pending]]) -> list[None]:
    """A batch function: each slice merged over what is stored and written, in the
    writer's IMMEDIATE transaction (the merge reads what other processes wrote, and
    nobody writes between the read and the upsert)."""
    entries = [e for part in slices for e in part]
    ids = json_param([e.journey.links_clicked_id for e in entries])
    found = orjson.loads(conn.execute(_SELECT_BATCH, (ids,)).fetchone()[0])
    stored = {row[0]: row_to_journey(row) for row in found}
    rows: list[tuple[Any, ...]] = []
    clicks: list[tuple[str, str, str, float]] = []
    cells: list[Cell] = []
    for entry in entries:
        journey = entry.journey
        merged = stored.get(journey.links_clicked_id)
        held = set() if merged is None else set(merged.click_ids)
        if merged is None:
            merged = journey
        else:
            merged.merge(journey)
        cells += click_cells(
            {p: c.seen_at for p, c in journey.click_ids.items() if p not in held},
            journey.links_clicked_id not in stored, merged.first_seen, merged.preview)
        rows.append(journey_to_row(merged))
        clicks.extend((p, v, journey.links_clicked_id, t)
                      for (p, v), t in entry.seen.items())
    conn.execute(_UPSERT, (json_param(rows),))
    if clicks:
        conn.execute(_UPSERT_CLICK, (json_param(clicks),))
    if cells:
        conn.execute(SQL_ADD, (json_param(cells), time.time()))
    return [None] * len(slices)
