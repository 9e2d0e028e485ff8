"""What the operators' API answers, as JSON-ready dicts (the contract's shapes).

Pure: the reads (`sqlite_reads`, `redis_reads`) hand over `EventRecord`s and outbox
rows; this module alone decides field names, so both backends answer alike. A sink
an event was not queued for (deduped, skipped, suppressed) is a delivery without an
outbox row (`id` null); a queued one whose row is gone was sent and purged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.conversions.events import Event
from proxy.conversions.outbox import LAST_BODY, OutboxRow
from proxy.conversions.states import Outcome, RowState


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as submitted: what each sink's outcome was, and its outbox rows."""

    event: Event
    outcomes: Mapping[str, str]            # sink -> Outcome value
    rows: Sequence[OutboxRow] = field(default_factory=tuple)


def record_from(event: bytes | str, result: bytes | str,
                rows: Sequence[OutboxRow]) -> EventRecord:
    """`event` empty: the rows hold it (they were stored with it)."""
    outcomes = orjson.loads(result).get("outcomes") or {}
    return EventRecord(Event.from_json(event) if event else rows[0].event, outcomes, rows)


def delivery(row: OutboxRow) -> dict[str, Any]:
    return {"id": str(row.id), "sink": row.sink, "status": row.state.value,
            "attempts": row.attempts, "last_code": row.last_code,
            "last_body": (row.last_body or "")[:LAST_BODY] or None,
            "next_attempt_at": row.next_attempt_at
            if row.state in (RowState.PENDING, RowState.RETRY) else None,
            "updated_at": row.updated_at}


def _unqueued(sink: str, status: str) -> dict[str, Any]:
    return {"id": None, "sink": sink, "status": status, "attempts": 0, "last_code": None,
            "last_body": None, "next_attempt_at": None, "updated_at": None}


def event_view(rec: EventRecord, *, visitor: bool = False,
               unrecorded: str = RowState.SENT.value) -> dict[str, Any]:
    """`unrecorded`: the status of a queued sink without its row (sent and purged,
    or, as the event is fired, still pending)."""
    e = rec.event
    by_sink = {r.sink: r for r in rec.rows}
    deliveries = []
    for sink, outcome in rec.outcomes.items():
        row = by_sink.get(sink)
        if row is not None:
            deliveries.append(delivery(row))
        else:
            deliveries.append(_unqueued(sink, unrecorded
                                        if outcome == Outcome.QUEUED.value else outcome))
    out: dict[str, Any] = {
        "event_id": e.event_id, "event": e.name, "time": e.event_time,
        "job_name": e.job_name, "job_id": e.job_id, "url": e.url, "rule": e.rule,
        "preview": e.preview, "deliveries": deliveries}
    if visitor:
        out["linksClickedId"] = e.links_clicked_id
    return out


def dead_view(row: OutboxRow) -> dict[str, Any]:
    return {**delivery(row), "event": row.event.name, "event_id": row.event.event_id,
            "linksClickedId": row.event.links_clicked_id}


def fired_view(event: Event, outcomes: Mapping[str, str]) -> dict[str, Any]:
    """An event as it is submitted (`event: conversion` on the live feed)."""
    return event_view(EventRecord(event, outcomes), visitor=True,
                      unrecorded=RowState.PENDING.value)


def stream_delivery(row: OutboxRow) -> dict[str, Any]:
    return {**delivery(row), "event_id": row.event.event_id}
