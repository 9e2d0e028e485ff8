"""Streaming decoders and encoders for the Content-Encodings the transform handles.

Owns: gzip (multi-member), deflate (zlib-wrapped or raw, detected from the
first two bytes; re-encoded zlib-wrapped as RFC 9110 says), br, identity.
Encoders flush after every chunk so a long page reaches the visitor while the
upstream is still sending. Decoders never produce more than `max_decoded`
bytes in total (a decompression bomb raises `DecompressionBombError`) and never
inflate more than `_STEP` bytes per internal call, so memory stays bounded.

Errors::

    CodecError                      corrupt input
    └── DecompressionBombError      decoded size over the cap
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

import brotli  # type: ignore[import-untyped]

DEFAULT_MAX_DECODED: Final = 64 * 1024 * 1024
GZIP_LEVEL: Final = 6
BROTLI_QUALITY: Final = 5           # streaming: 11 (brotli's default) is far too slow per chunk
_STEP: Final = 256 * 1024           # most bytes inflated by one call
SUPPORTED: Final = frozenset({"identity", "gzip", "x-gzip", "deflate", "br"})


class CodecError(Exception):
    """The encoded body is corrupt."""


class DecompressionBombError(CodecError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"decoded body exceeds {limit} bytes")
        self.limit = limit


class Decoder(Protocol):
    def decode(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class Encoder(Protocol):
    def encode(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


def normalize(content_encoding: str | None) -> str | None:
    """The single coding to undo, "identity" for none, None when not handled
    (unknown, or several stacked like "gzip, br")."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1 or codings[0] not in SUPPORTED:
        return None
    return "gzip" if codings[0] == "x-gzip" else codings[0]


class _Identity:
    def decode(self, chunk: bytes) -> bytes:
        return chunk

    encode = decode

    def finish(self) -> bytes:
        return b""


class _Capped:
    """Counts decoded bytes against the cap."""

    def __init__(self, max_decoded: int) -> None:
        self._left = max_decoded
        self._limit = max_decoded

    def _count(self, out: bytes) -> bytes:
        self._left -= len(out)
        if self._left < 0:
            raise DecompressionBombError(self._limit)
        return out


class _ZlibDecoder(_Capped):
    def __init__(self, max_decoded: int, gzip: bool) -> None:
        super().__init__(max_decoded)
        self._gzip = gzip
        self._d: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._head = b""            # deflate: bytes held until the wrapper is known

    def decode(self, chunk: bytes) -> bytes:
        if self._d is None:
            self._head += chunk
            if len(self._head) < 2:
                return b""
            chunk, self._head = self._head, b""
            self._d = zlib.decompressobj(15 if _is_zlib_header(chunk) else -15)
        out: list[bytes] = []
        try:
            while chunk:
                d = self._d
                if d.eof:
                    # gzip: another member may follow; trailing garbage or padding is dropped
                    if not self._gzip or not chunk.lstrip(b"\0"):
                        break
                    self._d = d = zlib.decompressobj(31)
                out.append(self._count(d.decompress(chunk, _STEP)))
                chunk = d.unused_data if d.eof else d.unconsumed_tail
        except zlib.error as e:
            raise CodecError(str(e)) from e
        return b"".join(out)

    def finish(self) -> bytes:
        if self._d is None:
            if not self._head:
                return b""
            self._d = zlib.decompressobj(-15)
            chunk, self._head = self._head, b""
            return self.decode(chunk) + self.finish()
        # A truncated stream is ended with what was decoded, as browsers do.
        try:
            return self._count(self._d.flush())
        except zlib.error as e:
            raise CodecError(str(e)) from e


def _is_zlib_header(b: bytes) -> bool:
    return b[0] & 0x0F == 8 and b[0] >> 4 <= 7 and (b[0] << 8 | b[1]) % 31 == 0


class _BrotliDecoder(_Capped):
    def __init__(self, max_decoded: int) -> None:
        super().__init__(max_decoded)
        self._d = brotli.Decompressor()

    def decode(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        try:
            data = self._d.process(chunk, output_buffer_limit=_STEP)
            while True:
                out.append(self._count(data))
                # a full buffer may leave output pending even when input is accepted
                if not data or (len(data) < _STEP and self._d.can_accept_more_data()):
                    break
                data = self._d.process(b"", output_buffer_limit=_STEP)
        except brotli.error as e:
            raise CodecError(str(e)) from e
        return b"".join(out)

    def finish(self) -> bytes:
        return b""


class _ZlibEncoder:
    def __init__(self, wbits: int) -> None:
        self._c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, wbits)

    def encode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        return self._c.compress(chunk) + self._c.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._c.flush(zlib.Z_FINISH)


class _BrotliEncoder:
    def __init__(self) -> None:
        self._c = brotli.Compressor(quality=BROTLI_QUALITY)

    def encode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        return self._c.process(chunk) + self._c.flush()

    def finish(self) -> bytes:
        return self._c.finish()


def decoder(coding: str, max_decoded: int = DEFAULT_MAX_DECODED) -> Decoder:
    """A decoder for a coding as returned by `normalize`."""
    if coding == "identity":
        return _Identity()
    if coding in ("gzip", "deflate"):
        return _ZlibDecoder(max_decoded, gzip=coding == "gzip")
    if coding == "br":
        return _BrotliDecoder(max_decoded)
    raise ValueError(f"unsupported content-coding {coding!r}")


def encoder(coding: str) -> Encoder:
    if coding == "identity":
        return _Identity()
    if coding == "gzip":
        return _ZlibEncoder(31)
    if coding == "deflate":
        return _ZlibEncoder(15)
    if coding == "br":
        return _BrotliEncoder()
    raise ValueError(f"unsupported content-coding {coding!r}")
