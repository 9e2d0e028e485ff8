"""Which sinks an event goes to: consent, `requires`, what a network takes and
preview, decided without I/O.

A preview visitor's event (`Event.preview`) goes only to sinks that can mark it as a
test: Meta with a `preview_test_event_code` (or a `test_event_code`: every event is a
test there) and Indeed (testFire). Every other sink skips it, counted as skipped.

Dedupe is not decided here: it needs the stored keys, so the outbox applies it in the
same transaction that inserts the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from proxy.config.model import Sink
from proxy.config.networks import INDEED_EVENTS, missing_params
from proxy.conversions.events import Event
from proxy.conversions.sinks.indeed import indeed_event
from proxy.conversions.states import Outcome


def takes_preview(sink: Sink) -> bool:
    """Whether `sink` can receive a preview visitor's events as test events."""
    if sink.type == "meta":
        return bool(sink.preview_test_event_code or sink.test_event_code)
    return sink.type == "indeed"


class SinkConsent(Protocol):
    """A visitor's consent asked per sink (`attribution.consent.ConsentState`): a sink
    with `tcf_vendor` needs that vendor's consent."""

    def allows(self, sink: Sink) -> bool: ...


Consent = bool | SinkConsent


def _allowed(sink: Sink, consent: Consent) -> bool:
    if isinstance(consent, bool):
        return consent or not sink.marketing
    return consent.allows(sink)


def uncarried(sink: Sink, event: Event) -> str | None:
    """Why `sink` cannot carry this kind of event at all, if it cannot: Indeed takes two
    event types, so any other is skipped (and counted) rather than sent to die."""
    if sink.type == "indeed" and indeed_event(sink, event) is None:
        return (f"Indeed takes only {' and '.join(INDEED_EVENTS)} (map {event.name} in "
                "event_names)")
    if event.preview and not takes_preview(sink):
        if sink.type == "meta":
            return "a preview visitor's test event (no preview_test_event_code)"
        return "a preview visitor's test event (this network has no test flag for it)"
    return None


def route(event: Event, sinks: Iterable[Sink], *, consent: Consent) -> dict[str, Outcome]:
    """Outcome per sink name: suppressed (no consent) before skipped (missing click id)."""
    plan: dict[str, Outcome] = {}
    for sink in sinks:
        if not _allowed(sink, consent):
            plan[sink.name] = Outcome.SUPPRESSED
        elif missing_params(sink, event.click_ids) or uncarried(sink, event):
            plan[sink.name] = Outcome.SKIPPED
        else:
            plan[sink.name] = Outcome.QUEUED
    return plan
