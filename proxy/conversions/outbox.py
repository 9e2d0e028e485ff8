"""The durable outbox contract: what the request path and the dispatcher rely on.

Each row is one (event, sink) delivery. `submit` is durable when it returns (the
visitor's response waits for it); `lease` hands due rows to one worker at a time, with
an expiry so a worker that dies loses its claim. Backends: `sqlite_outbox.SqliteOutbox`
(one host, several processes); a Redis backend implements the same Protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.states import Outcome, RowState

MAX_EVENT_AGE = 7 * 24 * 3600.0      # Meta rejects events older than this: given up
SENT_KEEP = 7 * 24 * 3600.0          # sent rows kept this long for `outbox` inspection
EVENT_ID_KEEP = 8 * 24 * 3600.0      # event ids remembered (API idempotency) this long


@dataclass(frozen=True, slots=True)
class SubmitResult:
    event_id: str
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)   # sink name -> outcome
    duplicate: bool = False          # the event_id was submitted before: nothing new done

    @property
    def queued(self) -> tuple[str, ...]:
        return tuple(s for s, o in self.outcomes.items() if o is Outcome.QUEUED)

    @property
    def deduped(self) -> bool:
        """The visitor already converted (event, job) in the window: nothing was queued."""
        return any(o is Outcome.DEDUPED for o in self.outcomes.values())

    def to_json(self) -> bytes:
        return orjson.dumps({"event_id": self.event_id, "outcomes": dict(self.outcomes)})

    @classmethod
    def from_json(cls, data: bytes, *, duplicate: bool = False) -> SubmitResult:
        d = orjson.loads(data)
        return cls(d["event_id"], {k: Outcome(v) for k, v in d["outcomes"].items()}, duplicate)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    sink: str
    event: Event
    state: RowState
    attempts: int
    next_attempt_at: float
    created_at: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    last_error: str | None = None
    dead_body: str | None = None

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.event.event_id, self.sink)


def idempotency_key(event_id: str, sink: str) -> str:
    return f"{event_id}:{sink}"


SubmitListener = Callable[[Iterable[str]], None]


class Outbox(Protocol):
    async def submit(self, event: Event, sinks: Sequence[Sink], *,
                     consent: bool) -> SubmitResult:
        """Dedupe, route and enqueue in one durable transaction; counts each outcome."""

    async def lease(self, sink: str, owner: str, limit: int,
                    lease_seconds: float) -> list[OutboxRow]:
        """Claim up to `limit` due rows of `sink` for `owner`; gives up expired ones."""

    async def mark_sent(self, ids: Sequence[int], owner: str) -> int: ...

    async def mark_retry(self, ids: Sequence[int], owner: str, delay: float,
                         error: str) -> int: ...

    async def mark_dead(self, ids: Sequence[int], owner: str, error: str,
                        body: str = "") -> int: ...

    async def release(self, owner: str) -> int:
        """Return the owner's unfinished leases to the queue (a clean stop)."""

    async def pending_count(self) -> int: ...

    async def counts(self) -> dict[str, dict[str, int]]:
        """Rows per sink and state."""

    async def list_rows(self, *, dead: bool = False, limit: int = 100) -> list[OutboxRow]:
        """Dead letters, or rows still owed a delivery."""

    async def get(self, row_id: int) -> OutboxRow | None: ...

    async def retry_dead(self, sink: str | None = None) -> int:
        """Re-queue dead letters (not those past the 7-day limit); how many."""

    async def purge(self) -> None:
        """Forget expired dedupe keys, old event ids and old sent rows."""

    def subscribe(self, listener: SubmitListener) -> None:
        """Call `listener(sink_names)` after a submit in this process queued rows."""

    async def close(self) -> None: ...
