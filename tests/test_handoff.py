"""Events fired on a response that is no tracked page: the header, the carry and the marks.

`plan_handoff` is a function call: which cookies and which header events one response
gets. The cookies' codecs take hostile values; the header stays printable ASCII that
JSON.parse reads back as the items, whatever the job names hold.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.handoff import (
    CARRY_COOKIE,
    CARRY_FIELD_MAX,
    CARRY_MAX,
    FIRED_COOKIE,
    HEADER_MAX,
    NOTHING,
    Incoming,
    bounded,
    carry_cookie,
    events_header,
    from_script,
    plan_handoff,
    read_carry,
    read_fired,
)
from proxy.page_script import BOOTSTRAP, FIRED_MAX
from proxy.pixels import BrowserEvent

LCID = "0123456789abcdef0123456789abcdef"
A = BrowserEvent("ApplicationCompleted", "a" * 32, {"linksClickedId": LCID, "jobName": "Welder"})
B = BrowserEvent("ConversationStart", "b" * 32, {"linksClickedId": LCID})
C = BrowserEvent("ApplicationCompleted", "c" * 32, {"linksClickedId": LCID})


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def cookie_header(*events: BrowserEvent, fired: str | None = None) -> str:
    parts = ["linksClickedId=" + LCID, f"{CARRY_COOKIE}={cookie_value(carry_cookie(events, False))}"]
    if fired is not None:
        parts.append(f"{FIRED_COOKIE}={fired}")
    return "; ".join(parts)


def plan(incoming: Incoming = NOTHING, fired=(), *, status: int = 200,
         spends_carry: bool = False, script_request: bool = True):
    return plan_handoff(incoming, list(fired), status=status, spends_carry=spends_carry,
                        script_request=script_request, secure=True)


# --- what the request brought -----------------------------------------------------------

def test_a_request_without_a_carry_brings_nothing() -> None:
    for header in (None, "", "linksClickedId=x", f"{FIRED_COOKIE}={'a' * 32}",
                   f"{CARRY_COOKIE}=; other=1"):
        assert Incoming.read(header) == Incoming()


def test_carried_events_the_script_tracked_already_are_dropped() -> None:
    incoming = Incoming.read(cookie_header(A, B, fired=f"{'x' * 32}.{A.event_id}"))
    assert incoming.pending == (B,)
    assert incoming.had_carry and incoming.had_fired
    incoming = Incoming.read(cookie_header(A, B))
    assert incoming.pending == (A, B) and not incoming.had_fired


def test_fired_ids_are_bounded_and_checked() -> None:
    assert read_fired(None) == frozenset()
    assert read_fired("a.b;c.<x>..d-_9") == {"a", "d-_9"}
    assert read_fired("x" * 65) == frozenset()
    many = ".".join(f"{i:032x}" for i in range(40))
    assert len(read_fired(many)) == FIRED_MAX


@pytest.mark.parametrize("value", [
    "", "!!!", "bm90IGpzb24", "eyJhIjoxfQ",            # not base64, not JSON, not a list
    "W1sxLDIsM11d",                                     # [[1,2,3]]: wrong shapes
    "x" * 5000,                                          # oversize
])
def test_a_malformed_carry_is_dropped(value: str) -> None:
    assert read_carry(value) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(BrowserEvent, st.text(min_size=1, max_size=300),
                          st.text(min_size=1, max_size=300),
                          st.dictionaries(st.text(max_size=60), st.text(max_size=300),
                                          max_size=3)), max_size=12))
def test_the_carry_cookie_round_trips_bounded(events: list[BrowserEvent]) -> None:
    header = carry_cookie(events, secure=False)
    value = cookie_value(header)
    assert re.fullmatch(r"[A-Za-z0-9_-]*", value)      # nothing to quote in a cookie
    back = read_carry(value)
    if len(value) <= 4096:
        assert back == bounded(events)
    assert len(back) <= CARRY_MAX
    assert all(len(e.name) <= CARRY_FIELD_MAX and len(e.event_id) <= CARRY_FIELD_MAX
               for e in back)


# --- one response's plan ----------------------------------------------------------------

def test_json_that_fires_gets_the_header_and_the_carry() -> None:
    h = plan(fired=[A])
    assert h.header == (A,)
    [cookie] = h.set_cookies
    assert cookie.startswith(f"{CARRY_COOKIE}=") and "HttpOnly" in cookie and "Secure" in cookie
    assert read_carry(cookie_value(cookie)) == [A]


def test_a_fired_event_gets_header_and_carry_whoever_asked() -> None:
    """A form posted straight to a JSON endpoint (no script): the cookie is what counts."""
    h = plan(fired=[A], script_request=False)
    assert h.header == (A,) and len(h.set_cookies) == 1


def test_a_new_carry_keeps_what_was_still_pending() -> None:
    h = plan(Incoming.read(cookie_header(A, B, fired=A.event_id)), [C])
    assert h.header == (B, C)
    assert read_carry(cookie_value(h.set_cookies[0])) == [B, C]


def test_a_redirect_carries_and_sends_no_header() -> None:
    for status in (302, 303):
        h = plan(fired=[A], status=status)
        assert h.header == () and read_carry(cookie_value(h.set_cookies[0])) == [A]


def test_nothing_fired_and_nothing_pending_changes_nothing() -> None:
    for status in (200, 204, 303, 404):
        assert plan(status=status) == plan(Incoming.read(cookie_header(A, fired=A.event_id)),
                                           status=status)
        assert plan(status=status).set_cookies == () and plan(status=status).header == ()


def test_a_pending_carry_reaches_the_next_script_request_only() -> None:
    """fetch() followed a 303 that fired: the JSON it landed on hands the carry over."""
    incoming = Incoming.read(cookie_header(A))
    assert plan(incoming).header == (A,) and plan(incoming).set_cookies == ()
    assert plan(incoming, script_request=False).header == ()     # an image, a stylesheet
    assert plan(incoming, status=302).header == ()


def test_the_page_that_tracks_the_events_clears_both_cookies() -> None:
    h = plan(Incoming.read(cookie_header(A, fired=B.event_id)), [C], spends_carry=True)
    assert h.header == ()
    assert sorted(c.split("=", 1)[0] for c in h.set_cookies) == [CARRY_COOKIE, FIRED_COOKIE]
    assert all("Max-Age=0" in c for c in h.set_cookies)
    fired_clear = next(c for c in h.set_cookies if c.startswith(FIRED_COOKIE))
    assert "HttpOnly" not in fired_clear        # the script wrote it; same attributes
    assert plan(spends_carry=True, fired=[C]).set_cookies == ()


def test_without_consent_the_carry_is_neither_tracked_nor_carried_on() -> None:
    incoming = Incoming.read(cookie_header(A, B, fired=A.event_id)).dropped()
    assert incoming.pending == () and incoming.had_carry and incoming.had_fired
    assert plan(incoming) == plan(NOTHING)                  # a script's request: nothing
    # Without consent to keep cookies, the response clears them.
    assert all("Max-Age=0" in c for c in plan(incoming, spends_carry=True).set_cookies)


def test_one_event_id_is_handed_over_once() -> None:
    h = plan(Incoming.read(cookie_header(A)), [A, C])
    assert h.header == (A, C)


# --- the header -------------------------------------------------------------------------

EVENT = st.builds(BrowserEvent, st.text(max_size=40), st.text(max_size=40),
                  st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=3))


def items(events: list[BrowserEvent]) -> list[dict]:
    return [{"event": e.name, "event_id": e.event_id, "data": dict(e.data)} for e in events]


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=CARRY_MAX))
def test_the_header_is_printable_ascii_json_of_the_items(events: list[BrowserEvent]) -> None:
    value = events_header(events)
    if value is None:
        assert events == []
        return
    assert re.fullmatch(r"[ -~]*", value) and len(value) <= HEADER_MAX
    back = json.loads(value)
    assert back and back == items(events)[:len(back)]


def test_a_header_too_large_leaves_the_last_events_to_the_carry() -> None:
    events = [BrowserEvent("E", str(i), {"jobName": "ü" * 200}) for i in range(8)]
    back = json.loads(events_header(events) or "[]")
    assert 0 < len(back) < 8 and back == items(events)[:len(back)]


def test_requests_from_a_pages_script() -> None:
    assert from_script({"Sec-Fetch-Dest": "empty"})
    assert not from_script({"Sec-Fetch-Dest": "document"}) and not from_script({})


def test_the_script_marks_as_the_server_reads() -> None:
    """The cookie name, id shape and count the script writes are the ones read back."""
    assert f"{FIRED_COOKIE}=" in BOOTSTRAP and f".slice(-{FIRED_MAX})" in BOOTSTRAP
    assert r"/^[\w-]{1,64}$/" in BOOTSTRAP
    assert "X-Careers-Edge-Events" in BOOTSTRAP
