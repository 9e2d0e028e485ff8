"""The head script's order: the shared page script first, then each network's handler,
then the page's own events — so every network sees every event, from the page or
from a response header later, through the one dispatch."""

from __future__ import annotations

import textwrap

import pytest

from proxy.config.load import load_config_text
from proxy.page_script import BOOTSTRAP
from proxy.pixels import BrowserEvent, PixelSet

RULES = """
[proxy]
upstream = "http://127.0.0.1:9"

[pixels.meta]
type = "meta"
pixel_id = "123456789012345"
paths = ["/jobs/**"]

[pixels.tt]
type = "tiktok"
pixel_code = "CJMB7ERC77U2JVNG7RF0"
paths = ["/jobs/**"]

[pixels.snippet]
type = "html"
html = "<i></i>"
paths = ["/contact"]
"""
EVENT = BrowserEvent("ApplicationCompleted", "e" * 32, {"linksClickedId": "v" * 32})


@pytest.fixture(scope="module")
def pixels() -> PixelSet:
    config = load_config_text(textwrap.dedent(RULES), "rules.toml", {})
    return PixelSet(config.pixels, config.sinks)


def head_script(pixels: PixelSet, path: str) -> str:
    return pixels.render(pixels.for_path(path), page_event_id="p" * 32,
                         links_clicked_id="v" * 32, events=[EVENT]).head_script


def test_the_page_script_comes_before_the_handlers_and_they_before_the_events(
        pixels: PixelSet) -> None:
    script = head_script(pixels, "/jobs/3")
    handlers = [i for i in range(len(script))
                if script.startswith("careersEdge.handlers.push(", i)]
    assert len(handlers) == 2                               # Meta's and TikTok's
    assert script.index(BOOTSTRAP) + len(BOOTSTRAP) <= handlers[0]
    assert handlers[-1] < script.index("careersEdge.track([")


def test_a_page_with_only_snippets_still_gets_the_page_script(pixels: PixelSet) -> None:
    script = head_script(pixels, "/contact")
    assert BOOTSTRAP in script and "careersEdge.handlers.push(" not in script
