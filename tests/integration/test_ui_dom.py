"""The UI's DOM builder (proxy/ui/dom.js) in Chromium: whatever a visitor or a network
put in a value — markup, entities, quotes, control characters, any Unicode — it
reaches the page as that exact text, never as elements or attributes.

The module runs in a blank page, imported from a Blob URL (it imports nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.browser import local_browser

pytestmark = pytest.mark.browser

DOM_JS = (Path(__file__).resolve().parents[2] / "proxy" / "ui" / "dom.js").read_text()
# Builds a journey-like row from hostile values and reports what the DOM holds.
RENDER = """
const [source, value, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
import(url).then((dom) => {
  const d = { id: "1", sink: value, status: value, attempts: 2, last_code: 400,
              last_body: value, next_attempt_at: null, updated_at: 1764750000 };
  const row = dom.h("tr", { dataset: { sink: value } },
    dom.h("td", { title: value }, value),
    dom.h("td", {}, dom.deliveryChip(d)),
    dom.h("td", {}, dom.journeyLink(value)),
    dom.h("td", {}, dom.chip(value, "preview")));
  document.body.replaceChildren(row);
  done({
    elements: Array.from(row.querySelectorAll("*"), e => e.tagName),
    attributes: Array.from(row.querySelectorAll("*"), e => e.getAttributeNames()).flat(),
    cells: Array.from(row.cells, c => c.textContent),
    title: row.cells[0].title,
    sink: row.dataset.sink,
    href: row.querySelector("a").getAttribute("href"),
    alerted: window.__alerted || false,
  });
}, (err) => done(String(err)));
"""
HOSTILE = [
    "<img src=x onerror=alert(1)>", "<script>window.__alerted = true</script>",
    '"><svg onload=alert(1)>', "&lt;b&gt;&amp;", "javascript:alert(1)", "' onmouseover='x",
    "</td></tr><tr><td>", "\u202eevil", "a\x00b", "{{7*7}}", "${alert(1)}",
]


@pytest.fixture(scope="module")
def driver() -> Iterator:
    with local_browser() as d:
        d.get("about:blank")
        yield d


def render(driver, value: str) -> dict:
    found = driver.execute_async_script(RENDER, DOM_JS, value)
    assert isinstance(found, dict), found
    return found


def check(driver, value: str) -> None:
    found = render(driver, value)
    assert found["elements"] == ["TD", "TD", "SPAN", "TD", "A", "TD", "SPAN"]
    assert sorted(set(found["attributes"])) == ["class", "data-sink", "href", "title"]
    assert found["cells"][0] == value and found["title"] == value and found["sink"] == value
    assert found["cells"][1] == f"{value} · {value} 400"
    assert found["cells"][2] == value and found["cells"][3] == value
    assert found["href"].startswith("#journey/") and "<" not in found["href"]
    assert not found["alerted"]


@pytest.mark.parametrize("value", HOSTILE)
def test_markup_in_a_value_stays_text(driver, value: str) -> None:
    check(driver, value)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60)
       | st.lists(st.sampled_from(["<", ">", "&", '"', "'", "=", "/", "img", "script", " ",
                                   "on", "error", "svg", ";", "#", "x"]), max_size=30)
       .map("".join))
def test_any_text_stays_text(driver, value: str) -> None:
    check(driver, value)
