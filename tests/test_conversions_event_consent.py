"""The fields the network sinks read (`ttp`, `consent_mode`, `preview`) surviving the
outbox's JSON, and rows written before them (or with the retired `consent` key) still
loading."""

from __future__ import annotations

from proxy.conversions.events import Event


def test_network_fields_round_trip_and_old_rows_still_load() -> None:
    mode = {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    e = Event("ApplicationCompleted", ttp="2F7h", consent_mode=mode, preview=True)
    assert Event.from_json(e.to_json()) == e
    old = b'{"name": "Hire", "event_id": "x", "event_time": 1.0, "consent": "GRANTED"}'
    back = Event.from_json(old)
    assert (back.ttp, back.consent_mode, back.preview) == (None, {}, False)
