"""Filtered response headers are kept by their upstream headers: a kept answer must
equal filtering from scratch, follow any change of a header, stay bounded, and never
keep a response that sets cookies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http import headers as h
from proxy.http.headers import OriginRewriter, response_headers

ORIGIN = "https://careers.acme.example"
HOST = "careers.acme.example"
REWRITER = OriginRewriter("ats.example", ["https://ats.example", "http://ats.example"])

NAME = st.sampled_from([b"Date", b"Server", b"Content-Type", b"Location", b"Refresh",
                        b"Set-Cookie", b"Connection", b"Keep-Alive", b"X-Extra",
                        b"Proxy-Thing", b"Content-Length", b"ETag", b"content-location"])
VALUE = st.sampled_from([b"keep-alive", b"close", b"X-Extra", b"close, x-extra",
                         b"https://ats.example/jobs/1", b"0; url=http://ats.example/x",
                         b"sid=1; Domain=ats.example; Path=/", b"text/html", b"12",
                         b"Sun, 22 Nov 2026 11:14:32 GMT", b"\xe9t\xe9"])
HEADERS = st.lists(st.tuples(NAME, VALUE), max_size=8)


def fresh(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """New bytes objects, as the parser hands over each response."""
    return [(bytes(bytearray(n)), bytes(bytearray(v))) for n, v in raw]


@settings(max_examples=300)
@given(HEADERS, st.sampled_from([ORIGIN, "http://127.0.0.1:8080"]))
def test_a_kept_answer_equals_filtering_afresh(raw: list[tuple[bytes, bytes]],
                                               origin: str) -> None:
    expected, _ = h._response_headers(raw, REWRITER, origin, HOST)
    first = response_headers(fresh(raw), REWRITER, origin, HOST)
    first.append(("X-Mutated", "by the caller"))    # a caller's list is its own
    assert first[:-1] == expected
    assert response_headers(fresh(raw), REWRITER, origin, HOST) == expected


def test_a_changed_header_is_filtered_again() -> None:
    raw = [(b"Date", b"Sun, 22 Nov 2026 11:14:32 GMT"), (b"Location", b"https://ats.example/a")]
    assert response_headers(raw, REWRITER, ORIGIN, HOST)[1] == \
        ("Location", f"{ORIGIN}/a")
    raw[1] = (b"Location", b"https://ats.example/b")
    assert response_headers(raw, REWRITER, ORIGIN, HOST)[1] == ("Location", f"{ORIGIN}/b")
    # The same upstream headers for another public origin or rewriter: not the kept answer.
    assert response_headers(raw, REWRITER, "https://other.example", HOST)[1] == \
        ("Location", "https://other.example/b")
    other = OriginRewriter("elsewhere.example", ["https://elsewhere.example"])
    assert response_headers(raw, other, ORIGIN, HOST)[1] == \
        ("Location", "https://ats.example/b")


def test_a_connection_header_drops_what_it_names_every_time() -> None:
    raw = [(b"Connection", b"close, X-Extra"), (b"X-Extra", b"1"), (b"ETag", b'"1"')]
    for _ in range(2):
        assert response_headers(fresh(raw), REWRITER, ORIGIN, HOST) == \
            [("ETag", '"1"'), ("Via", h.VIA_TEXT)]
    # Two Connection headers: what both name.
    raw = [(b"Connection", b"x-a"), (b"Connection", b"x-b"), (b"X-A", b"1"), (b"X-B", b"2")]
    assert response_headers(raw, REWRITER, ORIGIN, HOST) == [("Via", h.VIA_TEXT)]


def test_a_response_setting_cookies_is_not_kept() -> None:
    h._RESPONSES.clear()
    raw = [(b"Set-Cookie", b"sid=1; Domain=ats.example")]
    assert response_headers(raw, REWRITER, ORIGIN, HOST)[0] == \
        ("Set-Cookie", f"sid=1; Domain={HOST}")
    assert not h._RESPONSES


def test_unusually_large_headers_are_not_kept() -> None:
    h._RESPONSES.clear()
    raw = [(b"X-Big", b"x" * (h._KEPT_BYTES_MAX + 1))]
    assert response_headers(raw, REWRITER, ORIGIN, HOST)[0] == ("X-Big", "x" * (h._KEPT_BYTES_MAX + 1))
    assert not h._RESPONSES
    response_headers([(b"X-Small", b"x")], REWRITER, ORIGIN, HOST)
    assert len(h._RESPONSES) == 1


def test_kept_answers_are_bounded() -> None:
    for i in range(h._RESPONSES_MAX * 3):
        response_headers([(b"Date", str(i).encode())], REWRITER, ORIGIN, HOST)
        assert len(h._RESPONSES) <= h._RESPONSES_MAX
    for i in range(h._NAMED_MAX * 3):
        response_headers([(b"Connection", f"x-{i}".encode())], REWRITER, ORIGIN, HOST)
        assert len(h._NAMED) <= h._NAMED_MAX


def test_headers_given_as_lists_are_filtered_without_keeping() -> None:
    raw = [[b"ETag", b'"1"']]
    assert response_headers(raw, REWRITER, ORIGIN, HOST) == \
        [("ETag", '"1"'), ("Via", h.VIA_TEXT)]  # type: ignore[arg-type]
