"""The funnel's cells: which counters a click or an event adds one to."""

from __future__ import annotations

import calendar

from hypothesis import given
from hypothesis import strategies as st

from proxy.conversions import funnel
from proxy.conversions.events import Event

NOON = calendar.timegm((2026, 12, 3, 12, 0, 0))


def test_an_event_counts_under_each_click_param_and_its_job() -> None:
    e = Event("ApplicationCompleted", click_ids={"tlr_sid": "a", "gclid": "b"},
              job_id="7", job_name="Nurse")
    assert funnel.event_cells(e, NOON) == [
        ("source", "2026-12-03", "gclid", "ApplicationCompleted"),
        ("source", "2026-12-03", "tlr_sid", "ApplicationCompleted"),
        ("job", "2026-12-03", "Nurse", "ApplicationCompleted")]
    bare = Event("Hire", job_id="7")
    assert funnel.event_cells(bare, NOON) == [("source", "2026-12-03", "direct", "Hire"),
                                              ("job", "2026-12-03", "7", "Hire")]
    assert funnel.event_cells(Event("Hire"), NOON)[1][2] == funnel.NO_JOB


def test_preview_events_and_other_events_count_nowhere() -> None:
    assert funnel.event_cells(Event("Hire", preview=True), NOON) == []
    assert funnel.event_cells(Event("RedirectPage"), NOON) == []


def test_clicks_count_new_params_once_and_a_bare_journey_as_direct() -> None:
    assert funnel.click_cells({"gclid": NOON}, True, NOON, False) == [
        ("source", "2026-12-03", "gclid", "clicks")]
    assert funnel.click_cells({}, True, NOON, False) == [
        ("source", "2026-12-03", "direct", "clicks")]
    assert funnel.click_cells({}, False, NOON, False) == []      # a return visit
    assert funnel.click_cells({"gclid": NOON}, True, NOON, True) == []


def test_rows_are_newest_day_first_with_every_step() -> None:
    rows = funnel.rows([("2026-12-02", "b", "clicks", 2), ("2026-12-03", "a", "Hire", 1),
                        ("2026-12-02", "a", "clicks", 1), ("2026-12-02", "a", "clicks", 1),
                        ("2026-12-02", "a", "Unknown", 9)])
    assert [(r["day"], r["key"]) for r in rows] == [
        ("2026-12-03", "a"), ("2026-12-02", "a"), ("2026-12-02", "b")]
    assert rows[1] == {"day": "2026-12-02", "key": "a", "clicks": 2, "ConversationStart": 0,
                       "ApplicationCompleted": 0, "Hire": 0}


def test_the_window_starts_days_minus_one_before_today() -> None:
    assert funnel.first_day(1, NOON) == "2026-12-03"
    assert funnel.first_day(30, NOON) == "2026-11-04"


@given(by=st.sampled_from(funnel.BY), key=st.text(), step=st.sampled_from(funnel.STEPS))
def test_a_redis_field_gives_back_any_key(by: str, key: str, step: str) -> None:
    assert funnel.parse_redis_field(funnel.redis_field(by, key, step)) == (by, key, step)
