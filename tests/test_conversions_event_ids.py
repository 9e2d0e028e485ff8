"""Event ids: random version-4 UUIDs as 32 hex digits, the form sinks and dedupe expect."""

from __future__ import annotations

import uuid

from proxy.conversions.events import Event, new_event_id


def test_event_ids_are_random_v4_uuids_in_hex() -> None:
    ids = [new_event_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        u = uuid.UUID(hex=i)
        assert u.hex == i and u.version == 4 and u.variant == uuid.RFC_4122
    # Every random bit is used: no hex digit outside the fixed ones is stuck.
    free = [k for k in range(32) if k not in (12, 16)]
    assert all(len({i[k] for i in ids}) == 16 for k in free)


def test_an_event_gets_its_own_id() -> None:
    assert Event("Lead").event_id != Event("Lead").event_id
