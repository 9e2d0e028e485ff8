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
