"""The response head as the proxy encodes it: the bytes the upstream sent, never a
split head."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.response import encode_lines, must_be_empty


def encode_head(status_line: str, headers: list[tuple[str, str]]) -> bytes:
    return encode_lines([status_line, *map(": ".join, headers)])


# Header text as the proxy holds it: the upstream's bytes decoded as Latin-1.
FIELD_BYTES = st.binary(min_size=1, max_size=30).filter(
    lambda b: all(c == 9 or 32 <= c < 127 or c >= 128 for c in b))
NAME = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)


@given(st.lists(st.tuples(NAME, FIELD_BYTES), max_size=8))
def test_header_bytes_go_out_as_they_came(fields: list[tuple[str, bytes]]) -> None:
    headers = [(name, value.decode("latin-1")) for name, value in fields]
    head = encode_head("HTTP/1.1 200 OK", headers)
    assert head == b"HTTP/1.1 200 OK\r\n" + b"".join(
        name.encode() + b": " + value + b"\r\n" for name, value in fields) + b"\r\n"


@given(st.text(max_size=10), st.sampled_from("\r\n\x00\x01\x0b\x1f\x7f"), st.text(max_size=10))
def test_a_control_character_anywhere_is_refused(before: str, control: str, after: str) -> None:
    value = before + control + after
    for headers in ([("X-Test", value)], [(value or "x", "1")]):
        with pytest.raises(ValueError):
            encode_head("HTTP/1.1 200 OK", headers)
    with pytest.raises(ValueError):
        encode_head("HTTP/1.1 200 " + value, [])


REFERENCE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")   # what a head line may not carry


@given(st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_refused_exactly_when_a_line_carries_a_control_character(lines: list[str]) -> None:
    """Any text, C1 controls and text outside Latin-1 included: refused iff a line
    carries a C0 control other than HTAB, or DEL."""
    if any(REFERENCE.search(line) for line in lines):
        with pytest.raises(ValueError):
            encode_lines(lines)
    else:
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            expected = text.encode("latin-1")
        except UnicodeEncodeError:
            expected = text.encode("utf-8")
        assert encode_lines(lines) == expected


def test_text_outside_latin1_goes_as_utf8() -> None:
    assert encode_head("HTTP/1.1 200 OK", [("X-Test", "€")]) == \
        "HTTP/1.1 200 OK\r\nX-Test: €\r\n\r\n".encode()


@pytest.mark.parametrize("method, status, empty", [
    ("GET", 200, False), ("HEAD", 200, True), ("GET", 204, True), ("GET", 304, True),
    ("GET", 101, True), ("POST", 201, False), ("CONNECT", 200, True), ("CONNECT", 407, False),
    ("GET", 404, False),
])
def test_which_responses_have_no_body(method: str, status: int, empty: bool) -> None:
    assert must_be_empty(method, status) is empty
