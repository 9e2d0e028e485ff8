"""Outbox row states and the moves between them, as a data table (after h11's `_state`).

    pending ──lease──▶ leased ──send────▶ sent
       ▲                │ ▲ ──retry───▶ retry ──lease──▶ leased
       │                │ └─reclaim (lease expired: its owner died)
    requeue             ├──give_up──▶ dead
       │                └──release──▶ retry   (dispatcher stopping)
      dead ◀──expire── pending | retry | leased   (older than 7 days)

No I/O here: storage backends ask `sources(action)` which states an UPDATE may touch
and `next_state` what it sets, so every backend moves rows the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class RowState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


class Action(StrEnum):
    LEASE = "lease"
    RECLAIM = "reclaim"      # lease a row whose lease expired
    SEND = "send"
    RETRY = "retry"
    GIVE_UP = "give_up"
    EXPIRE = "expire"
    REQUEUE = "requeue"
    RELEASE = "release"


class InvalidTransition(ValueError):
    pass


S = RowState
TRANSITIONS: Mapping[Action, tuple[frozenset[RowState], RowState]] = MappingProxyType({
    Action.LEASE: (frozenset({S.PENDING, S.RETRY}), S.LEASED),
    Action.RECLAIM: (frozenset({S.LEASED}), S.LEASED),
    Action.SEND: (frozenset({S.LEASED}), S.SENT),
    Action.RETRY: (frozenset({S.LEASED}), S.RETRY),
    Action.GIVE_UP: (frozenset({S.LEASED}), S.DEAD),
    Action.EXPIRE: (frozenset({S.PENDING, S.RETRY, S.LEASED}), S.DEAD),
    Action.REQUEUE: (frozenset({S.DEAD}), S.PENDING),
    Action.RELEASE: (frozenset({S.LEASED}), S.RETRY),
})

# States still owed a delivery: what `edge_outbox_pending` counts.
OPEN_STATES = frozenset({S.PENDING, S.LEASED, S.RETRY})


def next_state(state: RowState, action: Action) -> RowState:
    sources, target = TRANSITIONS[action]
    if state not in sources:
        raise InvalidTransition(f"cannot {action} a {state} row")
    return target


def sources(action: Action) -> tuple[str, ...]:
    """The states `action` applies to, sorted, for a SQL `state IN (...)`."""
    return tuple(sorted(s.value for s in TRANSITIONS[action][0]))


def target(action: Action) -> str:
    return TRANSITIONS[action][1].value


def sql_in(states: tuple[str, ...] | frozenset[RowState]) -> str:
    """`('a','b')` for states: enum values only, never user input."""
    return "(" + ",".join(f"'{RowState(s).value}'" for s in sorted(states)) + ")"


class Outcome(StrEnum):
    """What submit did for one sink; the `outcome` label of `edge_conversions_total`."""

    QUEUED = "queued"
    DEDUPED = "deduped"
    SKIPPED = "skipped"
    SUPPRESSED = "suppressed"
