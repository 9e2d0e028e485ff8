"""The reads behind the operators' API, one Protocol for both backends.

`sqlite_reads.SqliteReads` and `redis_reads.RedisReads` read what the outbox and the
journeys record (see their module docstrings for the tables and keys); `open_reads`
picks the one for the stores the proxy opened.
"""

from __future__ import annotations

from typing import Any, Protocol

from proxy.ops.views import EventRecord


class OpsReads(Protocol):
    async def events_of(self, visitor: str, limit: int) -> list[EventRecord]:
        """The visitor's events, newest first."""

    async def recent_events(self, limit: int) -> list[EventRecord]:
        """Everyone's events, newest first."""

    async def funnel(self, by: str, since_day: str) -> list[tuple[str, str, str, int]]:
        """(day, key, step, n) of the funnel's cells from `since_day` (YYYY-MM-DD) on."""

    async def sink_hours(self, since_hour: int) -> list[tuple[str, int, int, int, int]]:
        """(sink, hour, sent, retried, dead), oldest hour first."""

    async def rule_hits(self) -> dict[str, tuple[str, int, float]]:
        """rule -> (event, hits, last fired)."""

    async def close(self) -> None: ...


def open_reads(outbox: Any) -> OpsReads:
    """The reads for the outbox's backend (the journeys and counters live beside it)."""
    from proxy.conversions.redis_outbox import RedisOutbox
    if isinstance(outbox, RedisOutbox):
        from proxy.ops.redis_reads import RedisReads
        return RedisReads(outbox)
    from proxy.ops.sqlite_reads import SqliteReads
    return SqliteReads(outbox.path)
