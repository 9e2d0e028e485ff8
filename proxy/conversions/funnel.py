"""The funnel's daily counters: which cells a click or an event adds one to.

A cell is (by, day, key, step). `by = "source"`: key is the click-id param (a
visitor with two click ids counts in both rows; none: "direct"); `by = "job"`: key is
the job's name (else its id; "(no job)"). Clicks are counted when a journey first
carries a param (a journey without any: "direct"), once, when it is first stored;
steps when an event is submitted and not deduped. Preview visitors count nowhere.

Pure: the stores add the cells in the transaction that records the journey or the
event (`SQL_*` for SQLite's `edge_counts`, `redis_field` for a `funnel:<day>` hash in
Redis), so the API reads a few hundred counters whatever the number of journeys.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from proxy.conversions.events import Event

CLICKS = "clicks"
EVENT_STEPS = ("ConversationStart", "ApplicationCompleted", "Hire")
STEPS = (CLICKS, *EVENT_STEPS)
BY = ("source", "job")
DIRECT = "direct"
NO_JOB = "(no job)"
KEEP_DAYS = 400              # the API answers 400 days at most
KEEP_SECONDS = (KEEP_DAYS + 1) * 86400

Cell = tuple[str, str, str, str]     # by, day, key, step

# SQLite: one table for the funnel's cells and the rules' hits (by = "rule", day "",
# key the rule, step its event; `last` when it last fired), so a submit adds both in
# one statement.
RULE = "rule"
SQL_SCHEMA = """CREATE TABLE IF NOT EXISTS edge_counts (
    by TEXT NOT NULL, day TEXT NOT NULL, key TEXT NOT NULL, step TEXT NOT NULL,
    n INTEGER NOT NULL, last REAL NOT NULL, PRIMARY KEY (by, day, key, step)) WITHOUT ROWID"""
# One statement per batch of cells (a JSON parameter, then the time): a cell twice adds two.
SQL_ADD = """INSERT INTO edge_counts (by, day, key, step, n, last)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'), 1, ?2
    FROM json_each(?1) WHERE true
    ON CONFLICT (by, day, key, step) DO UPDATE SET n = n + 1, last = max(last, excluded.last)"""
SQL_PURGE = "DELETE FROM edge_counts WHERE by <> 'rule' AND day < ?"


def day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def first_day(days: int, now: float) -> str:
    """The oldest day of an N-day window ending today (UTC)."""
    return day_of(now - (max(days, 1) - 1) * 86400)


def event_cells(event: Event, at: float) -> list[Cell]:
    if event.preview or event.name not in EVENT_STEPS:
        return []
    day = day_of(at)
    sources = sorted(p for p, v in event.click_ids.items() if v) or [DIRECT]
    cells = [("source", day, p, event.name) for p in sources]
    cells.append(("job", day, event.job_name or event.job_id or NO_JOB, event.name))
    return cells


def rule_cell(event: Event) -> list[Cell]:
    """The hit of the rule that fired `event` (SQLite's `edge_counts`)."""
    return [(RULE, "", event.rule, event.name)] if event.rule else []


def click_cells(new_params: Mapping[str, float], first_stored: bool, first_seen: float,
                preview: bool) -> list[Cell]:
    """Cells for one journey write: `new_params` are the params (and when each was
    seen) that the stored journey did not carry; `first_stored`, none was stored."""
    if preview:
        return []
    if new_params:
        return [("source", day_of(t), p, CLICKS) for p, t in sorted(new_params.items())]
    return [("source", day_of(first_seen), DIRECT, CLICKS)] if first_stored else []


def redis_key(day: str) -> str:
    return f"funnel:{day}"


def redis_field(by: str, key: str, step: str) -> str:
    """Key last: a job name may hold any character."""
    return f"{by}|{step}|{key}"


def parse_redis_field(field: str) -> tuple[str, str, str]:
    by, step, key = field.split("|", 2)
    return by, key, step


def rows(cells: Iterable[tuple[str, str, str, int]]) -> list[dict[str, object]]:
    """API rows from (day, key, step, n): newest day first, then by key."""
    table: dict[tuple[str, str], dict[str, object]] = {}
    for day, key, step, n in cells:
        if step in STEPS:
            row = table.setdefault((day, key), {"day": day, "key": key,
                                                **{s: 0 for s in STEPS}})
            row[step] = int(row[step]) + int(n)    # type: ignore[call-overload]
    ordered = sorted(table, key=lambda k: k[1])
    ordered.sort(key=lambda k: k[0], reverse=True)
    return [table[k] for k in ordered]
