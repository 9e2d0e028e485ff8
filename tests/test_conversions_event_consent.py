"""The ad-consent seam on an event (GRANTED, DENIED, or unasked), and the fields the
network sinks read surviving the outbox's JSON."""

from __future__ import annotations

import pytest

from proxy.conversions.events import DENIED, GRANTED, Event, ad_consent


@pytest.mark.parametrize("required, given, want", [
    (True, True, GRANTED), (True, False, DENIED), (False, False, DENIED), (False, True, None),
])
def test_ad_consent(required: bool, given: bool, want: str | None) -> None:
    assert ad_consent(required, given) == want


def test_network_fields_round_trip_and_old_rows_still_load() -> None:
    e = Event("ApplicationCompleted", ttp="2F7h", consent=GRANTED, preview=True)
    assert Event.from_json(e.to_json()) == e
    old = b'{"name": "Hire", "event_id": "x", "event_time": 1.0}'
    back = Event.from_json(old)
    assert (back.ttp, back.consent, back.preview) == (None, None, False)
