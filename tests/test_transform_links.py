"""Upstream-origin URLs become the public origin, whole hosts only, across chunks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform.links import LinkRewriter

UP, PUB = b"https://ats.example", b"https://careers.acme.example"


def rewrite(doc: bytes, cuts: list[int] = (), up: bytes = UP, pub: bytes = PUB) -> bytes:
    r = LinkRewriter(up, pub)
    points = sorted({c % (len(doc) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(doc)]:
        out.append(r.feed(doc[prev:p]))
        prev = p
    return b"".join(out) + r.finish()


@pytest.mark.parametrize("before,after", [
    (b'<a href="https://ats.example/jobs?q=1">', b'<a href="https://careers.acme.example/jobs?q=1">'),
    (b"<a href='http://ats.example'>", b"<a href='https://careers.acme.example'>"),
    (b'<img src="//ats.example/a.png">', b'<img src="https://careers.acme.example/a.png">'),
    (b'<form action="HTTPS://ATS.EXAMPLE/apply">', b'<form action="https://careers.acme.example/apply">'),
    (b'srcset="https://ats.example/a.png 1x, https://ats.example/b.png 2x"',
     b'srcset="https://careers.acme.example/a.png 1x, https://careers.acme.example/b.png 2x"'),
    (b'<meta http-equiv="refresh" content="0; url=https://ats.example/next">',
     b'<meta http-equiv="refresh" content="0; url=https://careers.acme.example/next">'),
    (b'{"@type":"JobPosting","url":"https:\\/\\/ats.example\\/jobs\\/1"}',
     b'{"@type":"JobPosting","url":"https://careers.acme.example\\/jobs\\/1"}'),
    (b"url(https://ats.example:443/f.woff)", b"url(https://careers.acme.example/f.woff)"),
    (b"https://ats.example#top https://ats.example", b"https://careers.acme.example#top https://careers.acme.example"),
])
def test_rewritten(before: bytes, after: bytes) -> None:
    assert rewrite(before) == after


@pytest.mark.parametrize("doc", [
    b'href="https://ats.example.evil.com/x"', b'href="https://ats.example-foo/"',
    b'href="https://ats.example:8443/"', b'href="https://ats.example@evil.com/"',
    b'href="https://evil.com//ats.example/"', b'href="https://notats.example/"',
    b'href="xhttps://ats.example/"', b"ats.example/jobs", b"https%3A%2F%2Fats.example",
])
def test_left_alone(doc: bytes) -> None:
    assert rewrite(doc) == doc


def test_upstream_with_port_and_public_with_port() -> None:
    doc = b"http://ats.example:8080/a http://ats.example/b"
    out = rewrite(doc, up=b"http://ats.example:8080", pub=b"http://localhost:9000")
    assert out == b"http://localhost:9000/a http://ats.example/b"


PIECES = [b"https://ats.example", b"//ats.example", b"https:\\/\\/ats.example", b"/", b".evil",
          b"-x", b":8443", b":443", b"@", b'"', b" ", b"a", b"<a href=", b"ATS.EXAMPLE", b"http:"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map(b"".join),
       st.lists(st.integers(0, 500), max_size=10))
def test_chunking_is_invisible(doc: bytes, cuts: list[int]) -> None:
    whole = rewrite(doc)
    assert rewrite(doc, cuts) == whole
    assert rewrite(doc, list(range(len(doc)))) == whole


# The rule as one regex over the whole document (slow, plain): the oracle for
# both ways the rewriter takes (one reversed substitution, or matches spliced in).
ORACLE = re.compile(rb"(?<![A-Za-z0-9+.\-/:\\])(?:https?:)?(?://|\\/\\/)ats\.example"
                    rb"(?::(?:80|443))?(?![A-Za-z0-9_.\-@]|:[0-9])", re.IGNORECASE)
LOWER_PIECES = [p for p in PIECES if p.lower() == p] + [b"HTTPS:", b"Http:", b"\\/\\/"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(LOWER_PIECES), max_size=25).map(b"".join),
       st.sampled_from([b"", b" ATS.example", b" ats.example:443", b" ats.example:80"]),
       st.lists(st.integers(0, 500), max_size=6))
def test_both_ways_match_the_plain_rule(doc: bytes, extra: bytes, cuts: list[int]) -> None:
    doc += extra        # an upper-case host or a default port takes the splicing way
    assert rewrite(doc, cuts) == ORACLE.sub(PUB, doc)
