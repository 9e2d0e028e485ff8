"""Page templates: a whole body transformed once, filled in per response.

The template must give byte for byte what the streaming transform gives for the
same body and snippets, for any document; the cache must keep only pages seen
twice, stay within its byte budget, and refuse pages whose transform depends on
the snippets.
"""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform.codecs import CodecError
from proxy.transform.csp import CspNeeds
from proxy.transform.html import HtmlTransform
from proxy.transform.template import MAX_BODY, PageTemplate, TemplateCache

REWRITE = (b"https://ats.example", b"https://careers.acme.example")
ENCODE = {"identity": lambda b: b, "gzip": gzip.compress, "deflate": zlib.compress,
          "br": brotli.compress}
DECODE = {"identity": lambda b: b, "gzip": gzip.decompress, "deflate": zlib.decompress,
          "br": brotli.decompress}
PAGE = (b"<!doctype html><html><head><title>Job</title>"
        b"<link rel=canonical href='https://ats.example/jobs/1'></head>"
        b"<body><a href=\"https://ats.example/apply\">Apply</a></body></html>")

# Fragments that move the injection points around: comments, raw text holding
# look-alike tags, several heads and bodies, a body without a head, odd bytes.
FRAGMENTS = [b"<html>", b"<head>", b"</head>", b"<body>", b"</body>", b"</html>",
             b"<!-- </head> </body> -->", b"<script>var s='</body>';</script>",
             b"<title>a</title>", b"<meta charset=utf-8>", b"<p>text", b"\xc3\xa9",
             b"<a href='https://ats.example/x'>", b"<style>p{}</style>", b"<",
             b"<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\">",
             b"<noscript></body></noscript>", b"<body class=x>", b" ", b"\n"]


def streamed(raw: bytes, coding: str, head: bytes, body: bytes, tail: bytes,
             rewrite: tuple[bytes, bytes] | None, meta: bool) -> bytes:
    t = HtmlTransform(coding, head, body, rewrite=rewrite,
                      meta_csp=CspNeeds(inline_scripts=(b"x",)) if meta else None)
    return t.feed(raw) + t.finish(tail)


@settings(max_examples=300, deadline=None)
@given(doc=st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(b"".join),
       coding=st.sampled_from(sorted(ENCODE)),
       head=st.sampled_from([b"", b"<script>h()</script>"]),
       body=st.sampled_from([b"", b"<img src=/px>"]),
       tail=st.sampled_from([b"", b"<template id=t>[]</template>"]),
       rewrite=st.sampled_from([None, REWRITE]), meta=st.booleans())
def test_template_renders_what_the_stream_gives(doc: bytes, coding: str, head: bytes,
                                                body: bytes, tail: bytes,
                                                rewrite: tuple[bytes, bytes] | None,
                                                meta: bool) -> None:
    raw = ENCODE[coding](doc)
    template = PageTemplate.build(raw, coding, head=bool(head), body=bool(body),
                                  rewrite=rewrite, meta_csp=meta)
    expected = DECODE[coding](streamed(raw, coding, head, body, tail, rewrite, meta))
    assert DECODE[coding](template.render(head, body, tail)) == expected
    # The rules see the rewritten document without any snippet.
    plain = streamed(raw, "identity" if coding == "identity" else coding, b"", b"", b"",
                     rewrite, False)
    assert template.head_bytes(1 << 20) == DECODE[coding](plain)


def test_two_visitors_get_their_own_snippets_from_one_template() -> None:
    cache = TemplateCache()
    kw = dict(head=True, body=True, rewrite=REWRITE, meta_csp=False)
    first = cache.get(PAGE, "identity", **kw)
    second = cache.get(PAGE, "identity", **kw)
    assert first is not None and second is not None
    a = second.render(b"<script>a</script>", b"<img a>")
    b = second.render(b"<script>b</script>", b"<img b>")
    assert a == (PAGE.replace(b"</head>", b"<script>a</script></head>")
                 .replace(b"</body>", b"<img a></body>")
                 .replace(b"https://ats.example", b"https://careers.acme.example"))
    assert b == a.replace(b"<script>a</script>", b"<script>b</script>").replace(
        b"<img a>", b"<img b>")


def test_a_page_is_kept_the_second_time_it_is_seen() -> None:
    cache = TemplateCache()
    kw = dict(head=True, body=False, rewrite=None, meta_csp=False)
    first = cache.get(PAGE, "identity", **kw)
    second = cache.get(PAGE, "identity", **kw)
    third = cache.get(PAGE, "identity", **kw)
    assert first is not None and first is not second
    assert third is second
    assert (cache.hits, cache.misses) == (1, 2)
    # The same bytes with other snippets or another coding are another template.
    assert cache.get(PAGE, "identity", head=True, body=True, rewrite=None,
                     meta_csp=False) is not second


def test_pages_seen_once_are_never_kept() -> None:
    cache = TemplateCache()
    for i in range(50):
        page = PAGE.replace(b"Job", b"Job %d" % i)
        assert cache.get(page, "identity", head=True, body=True, rewrite=None,
                         meta_csp=False) is not None
    assert len(cache._cache) == 0


def test_the_cache_stays_within_its_byte_budget() -> None:
    cache = TemplateCache(max_bytes=200_000)
    for i in range(40):
        page = PAGE.replace(b"Job", b"Job %d" % i) + b"<p>filler</p>" * 1000
        for _ in range(2):
            cache.get(page, "identity", head=True, body=True, rewrite=None, meta_csp=False)
    assert 0 < cache._cache.currsize <= 200_000
    assert len(cache._cache) < 40


def test_a_csp_meta_tag_makes_a_page_stream() -> None:
    page = PAGE.replace(b"<title>", b"<meta http-equiv=\"Content-Security-Policy\" "
                                    b"content=\"script-src 'self'\"><title>")
    cache = TemplateCache()
    for _ in range(3):
        assert cache.get(page, "identity", head=True, body=False, rewrite=None,
                         meta_csp=True) is None
    # Without pixels the meta tag is not rewritten, so the page can be templated.
    assert cache.get(page, "identity", head=False, body=False, rewrite=REWRITE,
                     meta_csp=False) is not None
    # Another http-equiv is no reason to stream.
    other = PAGE.replace(b"<title>", b"<meta http-equiv=refresh content=30><title>")
    assert cache.get(other, "identity", head=True, body=False, rewrite=None,
                     meta_csp=True) is not None


def test_nul_bytes_and_large_bodies_stream() -> None:
    kw = dict(head=True, body=True, rewrite=None, meta_csp=False)
    cache = TemplateCache()
    assert cache.get(PAGE.replace(b"Job", b"J\x00b"), "identity", **kw) is None
    assert cache.get(PAGE + b" " * MAX_BODY, "identity", **kw) is None


def test_a_body_that_does_not_decode_raises() -> None:
    with pytest.raises(CodecError):
        TemplateCache().get(b"not gzip at all", "gzip", head=True, body=False,
                            rewrite=None, meta_csp=False)


@settings(max_examples=200, deadline=None)
@given(filler=st.integers(min_value=0, max_value=4000), at=st.floats(0, 1),
       byte=st.sampled_from([b"x", b"<", b"\xc3", b"https://ats.example/"]))
def test_a_page_that_differs_anywhere_gets_its_own_template(filler: int, at: float,
                                                             byte: bytes) -> None:
    """Pages are looked up by a sample of their bytes, and the page is compared in full:
    one that differs from a kept page where the sample does not look is not served
    the kept page's template."""
    kept = PAGE.replace(b"</body>", b"<p>" + b"a" * filler + b"</p></body>")
    pos = len(b"<!doctype html>") + int(at * (len(kept) - len(b"<!doctype html>") - 1))
    other = kept[:pos] + byte + kept[pos + 1:]
    kw = dict(head=True, body=True, rewrite=REWRITE, meta_csp=False)
    cache = TemplateCache()
    for _ in range(3):
        cache.get(kept, "identity", **kw)
    for page in (other, kept, other):
        template = cache.get(bytes(bytearray(page)), "identity", **kw)
        expected = streamed(page, "identity", b"<script>h()</script>", b"<img>", b"",
                            REWRITE, False)
        assert template is not None
        assert template.render(b"<script>h()</script>", b"<img>") == expected


def test_a_page_larger_than_the_budget_is_not_kept() -> None:
    cache = TemplateCache(max_bytes=1000)
    page = PAGE + b"<p>filler</p>" * 100
    for _ in range(3):
        assert cache.get(page, "identity", head=True, body=True, rewrite=None,
                         meta_csp=False) is not None
    assert len(cache._cache) == 0 and cache._cache.currsize == 0
    assert cache.hits == 0
