"""Which responses get transformed, and their headers afterwards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform.headers import (
    should_transform,
    transformed_headers,
    unweaken_if_none_match,
    weaken_etag,
)

HTML = [("Content-Type", "text/html; charset=utf-8")]


@pytest.mark.parametrize("method,status,headers,expected", [
    ("GET", 200, HTML, True),
    ("POST", 200, [("content-type", "TEXT/HTML")], True),
    ("GET", 200, HTML + [("Content-Encoding", "br")], True),
    ("HEAD", 200, HTML, False),
    ("GET", 206, HTML + [("Content-Range", "bytes 0-9/100")], False),
    ("GET", 304, HTML, False),
    ("GET", 404, HTML, False),
    ("GET", 200, [("Content-Type", "application/json")], False),
    ("GET", 200, [("Content-Type", "text/htmlx")], False),
    ("GET", 200, [], False),
    ("GET", 200, HTML + [("Cache-Control", "public, No-Transform")], False),
    ("GET", 200, HTML + [("Content-Encoding", "gzip, br")], False),
    ("GET", 200, HTML + [("Content-Encoding", "zstd")], False),
    ("GET", 200, [("Content-Type", "text/html; charset=UTF-16LE")], True),     # re-encoded
    ("GET", 200, [("Content-Type", "text/html; charset=UTF-32")], False),
    ("GET", 200, [("Content-Type", 'text/html; charset="iso-8859-1"')], True),
    ("GET", 200, HTML + [("Content-Disposition", "attachment; filename=a.html")], False),
])
def test_should_transform(method, status, headers, expected) -> None:
    assert should_transform(method, status, headers) is expected
    raw = [(k.encode(), v.encode()) for k, v in headers]
    assert should_transform(method, status, raw) is expected


def test_transformed_headers_keep_order_and_kind() -> None:
    headers = [(b"Content-Type", b"text/html"), (b"Content-Length", b"1234"),
               (b"Content-Encoding", b"gzip"), (b"ETag", b'"v1"'), (b"Accept-Ranges", b"bytes"),
               (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Vary", b"Cookie")]
    assert transformed_headers(headers) == [
        (b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip"), (b"ETag", b'W/"v1"'),
        (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Vary", b"Cookie, Accept-Encoding")]


def test_vary_added_only_when_reencoding() -> None:
    assert transformed_headers([("Content-Encoding", "br")])[-1] == ("Vary", "Accept-Encoding")
    assert transformed_headers([("Content-Type", "text/html")]) == [("Content-Type", "text/html")]
    assert transformed_headers([("Content-Encoding", "gzip"), ("Vary", "*")])[-1] == ("Vary", "*")
    assert transformed_headers([("Content-Encoding", "gzip"), ("vary", "accept-encoding")]) == [
        ("Content-Encoding", "gzip"), ("vary", "accept-encoding")]


def test_etags() -> None:
    assert weaken_etag('"x"') == 'W/"x"'
    assert weaken_etag('W/"x"') == 'W/"x"'
    assert unweaken_if_none_match('W/"a", "b", W/"c,W/"') == '"a", "b", "c,W/"'
    assert unweaken_if_none_match('"aW/", W/"b"') == '"aW/", "b"'
    assert unweaken_if_none_match("*") == "*"


HEADER_CHOICES = [("Content-Type", "text/html"), ("content-type", "text/html; charset=UTF-16"),
                  ("CONTENT-TYPE", "application/json"), ("Cache-Control", "no-transform"),
                  ("Cache-Control", "max-age=0"), ("Content-Encoding", "gzip"),
                  ("content-encoding", "br"), ("Content-Range", "bytes 0-1/2"),
                  ("Content-Disposition", "attachment"), ("Server", "x"), ("Vary", "Cookie")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(HEADER_CHOICES), max_size=6))
def test_bytes_and_text_headers_get_the_same_answer(headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers]
    answer = should_transform("GET", 200, headers)
    assert should_transform("GET", 200, raw) == answer
    # repeated headers count together: two Content-Encodings are a stacked coding
    encodings = [v for k, v in headers if k.lower() == "content-encoding"]
    if len(encodings) > 1:
        assert not answer
