"""A bounded copy of a JSON body, taken as the body streams past.

`JsonCollector` is fed every chunk of a response (or a request body) on its way
to the other side; it never changes, delays or holds a chunk for keeps. It copies
at most `limit` bytes of the body, decoded when the body is gzip, deflate or br
(a response's Content-Encoding), and gives up, keeping nothing, as soon as the
body proves larger, undecodable or not JSON by its Content-Type: from then on a
chunk costs one attribute test. `document()` hands what was seen to the rules as
a lazily parsed `JsonDoc`.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.detect.jsonexpr import (
    INVALID,
    NOT_JSON,
    RESPONSE_LIMIT,
    TOO_LARGE,
    JsonDoc,
    is_json_type,
)
from proxy.transform import codecs


def _header(raw: Sequence[tuple[bytes, bytes]], lname: bytes) -> str | None:
    value = next((v for name, v in raw if name.lower() == lname), None)
    return value.decode("latin-1") if value is not None else None


class JsonCollector:
    __slots__ = ("_decoder", "_doc", "_limit", "_parts", "_problem", "_seen", "active")

    def __init__(self, content_type: str | None, content_encoding: str | None,
                 content_length: int | None, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._seen = 0
        self._problem: str | None = None
        self._decoder: codecs.Decoder | None = None
        self._doc: JsonDoc | None = None
        self.active = True
        coding = codecs.normalize(content_encoding)
        if not is_json_type(content_type):
            self._stop(NOT_JSON)
        elif coding is None:
            self._stop(INVALID)
        elif coding == "identity" and content_length is not None and content_length > limit:
            self._stop(TOO_LARGE)
        else:
            self._decoder = codecs.decoder(coding, max_decoded=limit)

    @classmethod
    def for_response(cls, raw_headers: Sequence[tuple[bytes, bytes]],
                     content_length: int | None) -> JsonCollector:
        """For an upstream answer, from its raw header pairs."""
        return cls(_header(raw_headers, b"content-type"), _header(raw_headers, b"content-encoding"),
                   content_length, RESPONSE_LIMIT)

    def _stop(self, problem: str) -> None:
        self._problem = problem
        self._parts = []
        self._decoder = None
        self.active = False

    def feed(self, chunk: bytes) -> None:
        if not self.active or not chunk:
            return
        self._take(chunk, final=False)

    def _take(self, chunk: bytes, final: bool) -> None:
        assert self._decoder is not None
        try:
            data = self._decoder.decode(chunk) if not final else self._decoder.finish()
        except codecs.DecompressionBombError:
            self._stop(TOO_LARGE)
            return
        except codecs.CodecError:
            self._stop(INVALID)
            return
        self._seen += len(data)
        if self._seen > self._limit:
            self._stop(TOO_LARGE)
        elif data:
            self._parts.append(data)

    def document(self) -> JsonDoc:
        """What was seen, for the rules; call once the body has ended."""
        if self._doc is None:
            if self.active:
                self._take(b"", final=True)
            self.active = False
            if self._problem is not None:
                self._doc = JsonDoc.unusable(self._problem)
            else:
                self._doc = JsonDoc(b"".join(self._parts))
            self._parts = []
        return self._doc
