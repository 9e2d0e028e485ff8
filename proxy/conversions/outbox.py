"""The durable outbox contract: what the request path and the dispatcher rely on.

Each row is one (event, sink) delivery. `submit` is durable when it returns (the
visitor's response waits for it); `lease` hands due rows to one worker at a time, with
an expiry so a worker that dies loses its claim. Backends: `sqlite_outbox.SqliteOutbox`
(one host, several processes) and `redis_outbox.RedisOutbox` (several hosts) implement
the Protocol; `OutboxBase` and `decode_row` are the parts they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from proxy.conversions.events import Event
from proxy.conversions.states import Outcome, RowState

# Routing imports the sinks, and a sink (meta) imports this module; the outbox's writer
# process imports it too, and needs neither the config nor aiohttp and prometheus.
if TYPE_CHECKING:
    from proxy.config.model import Sink
    from proxy.conversions.routing import Consent
    from proxy.metrics import Metrics

MAX_EVENT_AGE = 7 * 24 * 3600.0      # Meta rejects events older than this: given up
SENT_KEEP = 7 * 24 * 3600.0          # sent rows kept this long for `outbox` inspection
EVENT_ID_KEEP = 8 * 24 * 3600.0      # event ids remembered (API idempotency) this long,
                                     # and the events themselves, for the operators
HOURS_KEEP = 30 * 24 * 3600.0        # per-hour delivery counts kept this long
LAST_BODY = 500                      # characters of a network's answer kept per row


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
    updated_at: float | None = None
    last_code: int | None = None         # the network's last answer, if it answered
    last_body: str | None = None

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.event.event_id, self.sink)


def idempotency_key(event_id: str, sink: str) -> str:
    return f"{event_id}:{sink}"


# A row's stored fields, in `OutboxRow` order: the SQLite columns, the Redis hash fields.
ROW_FIELDS = ("id", "sink", "event", "state", "attempts", "next_attempt_at", "created_at",
              "lease_owner", "lease_expires_at", "last_error", "dead_body", "updated_at",
              "last_code", "last_body")
# What the dispatcher's marks count per sink and hour (`edge_sink_hours`, `sinkhours:`).
HOUR_OUTCOMES = {"send": "sent", "retry": "retried", "give_up": "dead", "expire": "dead"}


def as_text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _opt_text(v: bytes | str | None) -> str | None:
    return None if v is None else as_text(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None or v == b"" or v == "" else float(v)


def decode_row(values: Sequence[Any]) -> OutboxRow:
    """An `OutboxRow` from its `ROW_FIELDS` values, typed (SQLite) or as bytes (Redis)."""
    (row_id, sink, event, state, attempts, next_attempt_at, created_at, lease_owner,
     lease_expires_at, last_error, dead_body, updated_at, last_code, last_body) = values
    return OutboxRow(
        id=int(row_id), sink=as_text(sink), event=Event.from_json(event),
        state=RowState(as_text(state)), attempts=int(attempts),
        next_attempt_at=float(next_attempt_at), created_at=float(created_at),
        lease_owner=_opt_text(lease_owner),
        lease_expires_at=None if lease_expires_at is None else float(lease_expires_at),
        last_error=_opt_text(last_error), dead_body=_opt_text(dead_body),
        updated_at=_opt_float(updated_at),
        last_code=None if (code := _opt_float(last_code)) is None else int(code),
        last_body=_opt_text(last_body))


def hour_of(t: float) -> int:
    return int(t // 3600) * 3600


SubmitListener = Callable[[Iterable[str]], None]


class OutboxBase:
    """What every backend does around its storage: count outcomes, tell subscribers."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self._listeners: list[SubmitListener] = []

    def subscribe(self, listener: SubmitListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Start what submits need ahead of the first one (nothing by default)."""

    def _submitted(self, result: SubmitResult) -> SubmitResult:
        """Count a new submit's outcomes and wake the listeners if it queued rows; a
        repeated event_id did nothing new and counts nothing."""
        if not result.duplicate:
            if self.metrics is not None:
                for sink, outcome in result.outcomes.items():
                    self.metrics.conversions.labels(sink, outcome.value).inc()
            if result.queued:
                for listener in self._listeners:
                    listener(result.queued)
        return result

    def _expired(self, sink: str, count: int) -> None:
        """Rows a lease gave up at the 7-day limit are counted as dead."""
        if count and self.metrics is not None:
            self.metrics.conversions.labels(sink, RowState.DEAD.value).inc(count)


async def observe_backlog(outbox: Outbox, metrics: Metrics) -> None:
    """Set the outbox gauges: rows owed a delivery and the age of the oldest."""
    metrics.outbox_pending.set(await outbox.pending_count())
    metrics.outbox_oldest.set(await outbox.oldest_pending_age())


class Outbox(Protocol):
    async def submit(self, event: Event, sinks: Sequence[Sink], *,
                     consent: Consent) -> SubmitResult:
        """Dedupe, route and enqueue in one durable transaction; counts each outcome."""

    async def lease(self, sink: str, owner: str, limit: int,
                    lease_seconds: float) -> list[OutboxRow]:
        """Claim up to `limit` due rows of `sink` for `owner`; gives up expired ones."""

    # Marks keep the network's answer (`code`, head of `body`) and count the outcome
    # per sink and hour, in the same write.
    async def mark_sent(self, ids: Sequence[int], owner: str, code: int | None = None) -> int: ...

    async def mark_retry(self, ids: Sequence[int], owner: str, delay: float,
                         error: str, code: int | None = None, body: str = "") -> int: ...

    async def mark_dead(self, ids: Sequence[int], owner: str, error: str,
                        body: str = "", code: int | None = None) -> int: ...

    async def release(self, owner: str) -> int:
        """Return the owner's unfinished leases to the queue (a clean stop)."""

    async def pending_count(self) -> int: ...

    async def oldest_pending_age(self) -> float:
        """Seconds since the oldest row still owed a delivery was queued; 0 when none."""

    async def counts(self) -> dict[str, dict[str, int]]:
        """Rows per sink and state."""

    async def list_rows(self, *, dead: bool = False, limit: int = 100) -> list[OutboxRow]:
        """Dead letters, or rows still owed a delivery."""

    async def get(self, row_id: int) -> OutboxRow | None: ...

    async def retry_dead(self, sink: str | None = None, row_id: int | None = None) -> int:
        """Re-queue dead letters (not those past the 7-day limit), of one sink or the
        one row `row_id`; how many."""

    async def purge(self) -> None:
        """Forget expired dedupe keys, old event ids and old sent rows."""

    def subscribe(self, listener: SubmitListener) -> None:
        """Call `listener(sink_names)` after a submit in this process queued rows."""

    async def start(self) -> None:
        """Start what submits need, with the application (else the first submit does)."""

    async def close(self) -> None: ...
