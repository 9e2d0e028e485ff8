"""The head script's parts and the items a page's script tracks, as plain values.

Each pixel type hooks into the shared page script with a handler; events handed to a
page later (in a response header) are named as that page's pixels name them.
"""

from __future__ import annotations

from types import MappingProxyType

from proxy.config.model import Pixel, Sink
from proxy.detect.patterns import PathPattern
from proxy.page_script import BOOTSTRAP
from proxy.pixels import META_HANDLER, BrowserEvent, PixelSet

EVENT = BrowserEvent("ApplicationCompleted", "e" * 32, {"linksClickedId": "v" * 32})


def meta(name: str, pixel_id: str, *paths: str) -> Pixel:
    return Pixel(name, "meta", tuple(PathPattern.compile(p) for p in paths), pixel_id=pixel_id)


def meta_sink(name: str, pixel_id: str, **names: str) -> Sink:
    return Sink(name, "meta", pixel_id=pixel_id, event_names=MappingProxyType(names))


PIXELS = PixelSet(
    [meta("careers", "111", "/jobs/**"), meta("brand", "222", "/about/**"),
     Pixel("tag", "html", (PathPattern.compile("/**"),), html="<i></i>")],
    {"m1": meta_sink("m1", "111", ApplicationCompleted="SubmitApplication"),
     "m2": meta_sink("m2", "222", ApplicationCompleted="Lead")})


def test_a_page_with_meta_gets_the_bootstrap_and_metas_handler() -> None:
    script = PIXELS.render(PIXELS.for_path("/jobs/3"), page_event_id="p" * 32,
                           links_clicked_id="v" * 32, events=[EVENT]).head_script
    assert BOOTSTRAP in script and META_HANDLER in script
    # Handlers are registered before the page's own events are tracked.
    assert script.index(META_HANDLER) < script.index("careersEdge.track([")
    assert '"fb":"SubmitApplication"' in script


def test_a_page_without_meta_gets_the_bootstrap_only() -> None:
    script = PIXELS.render(PIXELS.for_path("/contact"), page_event_id="p" * 32,
                           links_clicked_id="v" * 32).head_script
    assert BOOTSTRAP in script and META_HANDLER not in script and "fbq(" not in script


def test_events_for_a_later_header_are_named_as_the_referring_page_names_them() -> None:
    [on_jobs] = PIXELS.script_items("/jobs/3", [EVENT])
    assert (on_jobs["fb"], on_jobs["fbm"]) == ("SubmitApplication", "track")
    [on_about] = PIXELS.script_items("/about/us", [EVENT])
    assert (on_about["fb"], on_about["fbm"]) == ("Lead", "track")
    [no_meta] = PIXELS.script_items("/contact", [EVENT])
    assert "fb" not in no_meta
    assert no_meta == {"event": EVENT.name, "event_id": EVENT.event_id,
                       "data": dict(EVENT.data)}
    [unknown] = PIXELS.script_items(None, [EVENT])    # no Referer: the file's first Meta pixel
    assert unknown["fb"] == "SubmitApplication"
