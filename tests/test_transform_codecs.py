"""Streaming codecs: real gzip/zlib/raw deflate/brotli data split anywhere, bombs refused."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform import codecs
from proxy.transform.codecs import CodecError, DecompressionBombError

PAGE = b"".join(b"<p>line %d \xe2\x9c\x93 of the page</p>\n" % i for i in range(3000))


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


ENCODED = {
    "gzip": gzip.compress(PAGE),
    "deflate": zlib.compress(PAGE),
    "raw-deflate": raw_deflate(PAGE),
    "br": brotli.compress(PAGE),
}


def decode_in(coding: str, blob: bytes, cuts: list[int], **kw) -> bytes:
    d = codecs.decoder(coding, **kw)
    points = sorted({c % (len(blob) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(blob)]:
        out.append(d.decode(blob[prev:p]))
        prev = p
    return b"".join(out) + d.finish()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(ENCODED)), st.lists(st.integers(0, 200_000), max_size=20))
def test_decode_split_anywhere(name: str, cuts: list[int]) -> None:
    coding = "deflate" if name == "raw-deflate" else name
    assert decode_in(coding, ENCODED[name], cuts + [0, 1, 2, 3]) == PAGE


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_one_byte_at_a_time(name: str) -> None:
    coding = "deflate" if name == "raw-deflate" else name
    blob = ENCODED[name][:4000]          # a prefix: truncated streams end with what decoded
    out = decode_in(coding, blob, list(range(len(blob))))
    assert PAGE.startswith(out) and len(out) > 4000


def test_gzip_members_and_padding() -> None:
    blob = gzip.compress(PAGE[:100]) + gzip.compress(PAGE[100:]) + b"\0\0\0"
    assert decode_in("gzip", blob, [5, 100, len(blob) - 2]) == PAGE


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_encoder_flushes_each_chunk(coding: str) -> None:
    enc = codecs.encoder(coding)
    first = enc.encode(PAGE[:5000])
    # What was sent so far decodes to the whole first chunk: nothing waits for the end.
    partial = codecs.decoder(coding).decode(first)
    assert partial == PAGE[:5000]
    rest = enc.encode(PAGE[5000:]) + enc.encode(b"") + enc.finish()
    assert decode_in(coding, first + rest, []) == PAGE
    assert {"gzip": gzip.decompress, "deflate": zlib.decompress,
            "br": brotli.decompress}[coding](first + rest) == PAGE


@pytest.mark.parametrize("coding,compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)])
def test_bomb_is_refused(coding: str, compress) -> None:
    bomb = compress(b"\0" * (8 * 1024 * 1024))
    with pytest.raises(DecompressionBombError):
        decode_in(coding, bomb, [len(bomb) // 2], max_decoded=1024 * 1024)
    assert len(decode_in(coding, bomb, [], max_decoded=8 * 1024 * 1024)) == 8 * 1024 * 1024


def test_corrupt_input_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_in("gzip", b"\x1f\x8b\x08\x00garbage-garbage-garbage", [])
    with pytest.raises(CodecError):
        decode_in("br", b"\xff" * 64, [])


@pytest.mark.parametrize("value,expected", [
    (None, "identity"), ("", "identity"), ("identity", "identity"), ("GZIP", "gzip"),
    ("x-gzip", "gzip"), (" br ", "br"), ("deflate", "deflate"), ("gzip, br", None),
    ("compress", None), ("zstd", None), ("identity, gzip", "gzip"),
])
def test_normalize(value: str | None, expected: str | None) -> None:
    assert codecs.normalize(value) == expected
