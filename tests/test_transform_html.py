"""The whole transform: decode, rewrite links, inject, re-encode, as the proxy streams it."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
import zlib
from collections.abc import Iterator

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform.codecs import DecompressionBombError
from proxy.transform.html import HtmlTransform, NotTransformable

HEAD = b"<script>/*edge*/</script>"
BODY = b"<img src=/px alt=''>"
REWRITE = (b"https://ats.example", b"https://careers.acme.example")
PAGE = (b"<!DOCTYPE html><html><head><title>Jobs</title>"
        b"<link rel=canonical href='https://ats.example/jobs'></head><body>"
        + b"".join(b"<p><a href=\"https://ats.example/jobs/%d\">Job %d</a></p>\n" % (i, i)
                   for i in range(2000))
        + b"</body></html>")
EXPECTED = (PAGE.replace(b"</head>", HEAD + b"</head>").replace(b"</body>", BODY + b"</body>")
            .replace(b"https://ats.example", b"https://careers.acme.example"))


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


CODINGS = {
    "identity": (lambda b: b, lambda b: b),
    "gzip": (gzip.compress, gzip.decompress),
    "deflate": (zlib.compress, zlib.decompress),
    "br": (brotli.compress, brotli.decompress),
}


def transform(coding: str, blob: bytes, cuts: list[int], **kw) -> bytes:
    t = HtmlTransform(coding, HEAD, BODY, rewrite=REWRITE, **kw)
    points = sorted({c % (len(blob) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(blob)]:
        out.append(t.feed(blob[prev:p]))
        prev = p
    return b"".join(out) + t.finish()


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(CODINGS)), st.lists(st.integers(0, 100_000), max_size=15))
def test_round_trip_split_anywhere(coding: str, cuts: list[int]) -> None:
    encode, decode = CODINGS[coding]
    assert decode(transform(coding, encode(PAGE), cuts)) == EXPECTED


def test_raw_deflate_is_detected_and_reencoded_wrapped() -> None:
    out = transform("deflate", raw_deflate(PAGE), [1, 2, 3, 500])
    assert zlib.decompress(out) == EXPECTED


def test_latin1_page() -> None:
    page = "<html><head><title>Stellen – Zürich</title></head><body>Grüße</body>".encode(
        "cp1252")
    out = gzip.decompress(transform("gzip", gzip.compress(page), list(range(0, 80, 3))))
    assert out == page.replace(b"</head>", HEAD + b"</head>").replace(b"</body>", BODY + b"</body>")
    assert out.decode("cp1252").count("ü") == 2


def test_bom_page() -> None:
    out = transform("identity", b"\xef\xbb\xbf<p>x</p>", [1, 2])
    assert out == b"\xef\xbb\xbf" + HEAD + b"<p>x</p>" + BODY


def test_unknown_or_stacked_encoding_is_refused() -> None:
    for value in ("gzip, br", "compress", "zstd"):
        with pytest.raises(NotTransformable):
            HtmlTransform(value, HEAD)


def test_bomb_is_refused() -> None:
    bomb = gzip.compress(b"<html><head></head><body>" + b" " * (4 * 1024 * 1024))
    with pytest.raises(DecompressionBombError):
        transform("gzip", bomb, [100], max_decoded=1024 * 1024)


def test_observed_prefix_is_decoded_rewritten_and_bounded() -> None:
    t = HtmlTransform("br", HEAD, rewrite=REWRITE, observe=300)
    blob = brotli.compress(PAGE)
    t.feed(blob[:10])
    t.feed(blob[10:])
    assert t.observed_complete
    assert t.head_bytes == EXPECTED.replace(HEAD, b"").replace(BODY, b"")[:300]
    assert b"/*edge*/" not in t.head_bytes


def test_identity_fast_path_returns_chunks_as_they_are() -> None:
    t = HtmlTransform("identity", HEAD, observe=0)
    assert t.feed(b"<head></head>") == b"<head>" + HEAD + b"</head>"
    chunk = b"<body>" + b"x" * 10_000
    assert t.feed(chunk) is chunk


def _page_chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b"<!DOCTYPE html><html><head><title>big</title></head><body>"
    row = b"<tr><td><a href='https://ats.example/j'>job</a></td><td>text</td></tr>\n"
    block = row * (size // len(row))
    for _ in range(total // len(block)):
        yield block
    yield b"</body></html>"


def test_20mb_page_streams_with_bounded_memory() -> None:
    source, want = hashlib.sha256(), hashlib.sha256()
    up = zlib.compressobj(1, zlib.DEFLATED, 31)
    down = zlib.decompressobj(31)
    t = HtmlTransform("gzip", HEAD, BODY, rewrite=REWRITE)
    total_in = 0
    tracemalloc.start()
    try:
        for chunk in _page_chunks(20 * 1024 * 1024):
            total_in += len(chunk)
            want.update(chunk.replace(b"</head>", HEAD + b"</head>")
                        .replace(b"</body>", BODY + b"</body>")
                        .replace(b"https://ats.example", b"https://careers.acme.example"))
            wire = up.compress(chunk) + up.flush(zlib.Z_SYNC_FLUSH)
            source.update(down.decompress(t.feed(wire)))
        source.update(down.decompress(t.feed(up.flush()) + t.finish()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total_in > 20_000_000
    assert source.hexdigest() == want.hexdigest()
    assert peak < 4 * 1024 * 1024, peak


UTF16_PAGE = ("<!DOCTYPE html><html><head><title>Jobs – 東京 🚀</title>"
              "<!-- </head> in a comment --><link rel=canonical href='https://ats.example/j'>"
              "</head><body><p>Grüße 👋</p></body></html>")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["utf-16-le", "utf-16-be"]), st.sampled_from(["identity", "gzip", "br"]),
       st.lists(st.integers(0, 100_000), max_size=12))
def test_utf16_page_with_a_bom_is_injected_in_its_own_encoding(
        charset: str, coding: str, cuts: list[int]) -> None:
    """Decoded, injected before the real </head> (not the one in the comment), links
    rewritten, encoded back to the page's UTF-16, whatever the chunking."""
    encode, decode = CODINGS[coding]
    page = "\ufeff" + UTF16_PAGE
    t = HtmlTransform(coding, HEAD, BODY, rewrite=REWRITE)
    blob = encode(page.encode(charset))
    points = sorted({c % (len(blob) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(blob)]:
        out.append(t.feed(blob[prev:p]))
        prev = p
    out.append(t.finish())
    expected = (page.replace("</head><body>", HEAD.decode() + "</head><body>")
                .replace("</body>", BODY.decode() + "</body>")
                .replace("https://ats.example", "https://careers.acme.example"))
    assert decode(b"".join(out)) == expected.encode(charset)
    assert t.injected
    assert "東京" in t.head_bytes.decode("utf-8")      # the rules see the page as UTF-8


def test_utf16_odd_bytes_and_lone_surrogates_come_out_as_they_went_in() -> None:
    page = "\ufeff<html><head></head><p>\ud800x</p>".encode("utf-16-le", "surrogatepass") + b"!"
    out = transform("identity", page, [3, 7, 11])
    assert out == page[:-1].replace("</head>".encode("utf-16-le"),
                                    (HEAD.decode() + "</head>").encode("utf-16-le")) \
        + BODY.decode().encode("utf-16-le") + b"!"


def test_a_utf32_page_gets_nothing_and_says_it_was_skipped() -> None:
    page = "\ufeff<html><head></head></html>".encode("utf-32-le")
    t = HtmlTransform("identity", HEAD, BODY)
    assert t.feed(page[:3]) + t.feed(page[3:]) + t.finish() == page
    assert not t.injected and t.skipped


def test_an_ascii_page_says_it_was_injected() -> None:
    t = HtmlTransform("identity", HEAD)
    t.feed(b"<html><head></head>")
    t.finish()
    assert t.injected and not t.skipped
    t = HtmlTransform("identity", b"")
    t.feed(b"<html><head></head>")
    t.finish()
    assert not t.injected and not t.skipped      # nothing to insert: neither


def test_a_utf16_page_without_a_bom_is_read_as_its_content_type_says() -> None:
    page = "<html><head><title>é</title></head><body></body></html>"
    for codec in ("utf-16-le", "utf-16-be"):
        t = HtmlTransform("identity", HEAD, utf16=codec)
        out = t.feed(page.encode(codec)[:5]) + t.feed(page.encode(codec)[5:]) + t.finish()
        assert out.decode(codec) == page.replace("</head>", HEAD.decode() + "</head>")
    # A BOM wins over the header.
    t = HtmlTransform("identity", HEAD, utf16="utf-16-be")
    out = t.feed(("\ufeff" + page).encode("utf-16-le")) + t.finish()
    assert out.decode("utf-16-le") == "\ufeff" + page.replace("</head>", HEAD.decode() + "</head>")
