"""The UI's server-sent events parser (proxy/ui/sse.js) in Chromium, against a
reference written from the HTML standard's rules, on streams cut at every kind of
boundary (a CRLF split between two chunks among them).

The module runs in a blank page, imported from a Blob URL: no server is involved,
only the parser the live view uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.browser import local_browser

pytestmark = pytest.mark.browser

SSE_JS = (Path(__file__).resolve().parents[2] / "proxy" / "ui" / "sse.js").read_text()
PARSE = """
const [source, chunks, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
import(url).then(({ SseParser }) => {
  const out = [];
  const parser = new SseParser((type, data) => out.push([type, data]),
                               (ms) => out.push(["retry", String(ms)]));
  for (const chunk of chunks) parser.push(chunk);
  done(out);
}, (err) => done(String(err)));
"""


def reference(stream: str) -> list[list[str]]:
    """What EventSource dispatches for `stream` (no `id`, no BOM: the proxy sends neither)."""
    out: list[list[str]] = []
    event, data = "", []
    for line in re.split(r"\r\n|\r|\n", stream)[:-1]:    # a last unterminated line is pending
        if line == "":
            if data:
                out.append([event or "message", "\n".join(data)])
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "retry" and value.isdigit() and value.isascii():
            out.append(["retry", str(int(value))])
    return out


@pytest.fixture(scope="module")
def driver() -> Iterator:
    with local_browser() as d:
        d.get("about:blank")
        yield d


def parse(driver, chunks: list[str]) -> list[list[str]]:
    found = driver.execute_async_script(PARSE, SSE_JS, chunks)
    assert isinstance(found, list), found
    return found


def test_the_streams_the_proxy_sends(driver) -> None:
    stream = ('retry: 2000\n\nevent: conversion\ndata: {"event":"Hire","job":"<b>x</b>"}\n\n'
              ": ping\n\nevent: delivery\ndata: {\"id\":\"7\"}\n\n")
    assert parse(driver, [stream]) == [
        ["retry", "2000"], ["conversion", '{"event":"Hire","job":"<b>x</b>"}'],
        ["delivery", '{"id":"7"}']]
    # A CRLF cut between its CR and its LF is one line ending, not two.
    assert parse(driver, ["data: a\r", "\ndata: b\r\n\r\n"]) == [["message", "a\nb"]]


LINE = st.sampled_from([
    "event: conversion", "event:delivery", "data: {\"a\": 1}", "data:x", "data", "data: ",
    ": ping", ":", "retry: 2000", "retry: 20x", "id: 5", "unknown: field", "", "", "",
    "data: ümlaut ✓", "event", "data:  two spaces",
])
ENDING = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def cut_streams(draw) -> tuple[str, list[str]]:
    lines = draw(st.lists(st.tuples(LINE, ENDING), max_size=25))
    stream = "".join(line + end for line, end in lines)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    return stream, chunks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut_streams())
def test_any_cut_of_any_stream_parses_as_the_whole(driver, case: tuple[str, list[str]]) -> None:
    stream, chunks = case
    assert parse(driver, chunks) == parse(driver, [stream]) == reference(stream)
