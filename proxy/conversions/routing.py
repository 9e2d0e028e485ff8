"""Which sinks an event goes to: consent, `requires` and what a network takes, decided
without I/O.

Dedupe is not decided here: it needs the stored keys, so the outbox applies it in the
same transaction that inserts the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from proxy.config.model import Sink
from proxy.conversions.events import Event
from proxy.conversions.sinks.indeed import EVENTS as INDEED_EVENTS
from proxy.conversions.sinks.indeed import indeed_event
from proxy.conversions.states import Outcome

# Click params a sink type cannot work without, on top of the sink's own `requires`.
IMPLICIT_REQUIRES: Mapping[str, tuple[str, ...]] = {
    "talroo": ("tlr_sid",), "indeed": ("ittk",), "linkedin": ("li_fat_id",)}
# ... and those of which it needs one at least.
IMPLICIT_ANY: Mapping[str, tuple[str, ...]] = {"google_ads": ("gclid", "gbraid", "wbraid")}
# Networks that get no preview visitor's events (Indeed marks them testFire instead).
NO_TEST_EVENTS = frozenset({"google_ads", "linkedin", "tiktok"})


def required_params(sink: Sink) -> tuple[str, ...]:
    extra = tuple(p for p in IMPLICIT_REQUIRES.get(sink.type, ()) if p not in sink.requires)
    return tuple(sink.requires) + extra


class SinkConsent(Protocol):
    """A visitor's consent asked per sink (`attribution.consent.ConsentState`): a sink
    with `tcf_vendor` needs that vendor's consent."""

    def allows(self, sink: Sink) -> bool: ...


Consent = bool | SinkConsent


def _allowed(sink: Sink, consent: Consent) -> bool:
    if isinstance(consent, bool):
        return consent or not sink.marketing
    return consent.allows(sink)


def missing_params(sink: Sink, click_ids: Mapping[str, str]) -> list[str]:
    """What the visitor lacks for `sink`: params, or `a|b|c` when any one would do."""
    missing = [p for p in required_params(sink) if not click_ids.get(p)]
    anyof = IMPLICIT_ANY.get(sink.type, ())
    if anyof and not any(click_ids.get(p) for p in anyof):
        missing.append("|".join(anyof))
    return missing


def uncarried(sink: Sink, event: Event) -> str | None:
    """Why `sink` cannot carry this kind of event at all, if it cannot: Indeed takes two
    event types, so any other is skipped (and counted) rather than sent to die."""
    if sink.type == "indeed" and indeed_event(sink, event) is None:
        return (f"Indeed takes only {' and '.join(INDEED_EVENTS)} (map {event.name} in "
                "event_names)")
    if event.preview and sink.type in NO_TEST_EVENTS:
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
