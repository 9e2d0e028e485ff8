"""UTF-16 documents (with a byte-order mark) through the ASCII-based HTML stages.

The locator, the injector and the link rewriter read bytes as an ASCII-compatible
encoding. A page that starts with a UTF-16 BOM is, by the HTML standard, UTF-16
whatever its headers say: `Utf16Bridge` turns it into UTF-8 for those stages
(`to_utf8`) and what they produce back into the page's UTF-16 (`from_utf8`), in
any chunking. A page without a BOM whose Content-Type says UTF-16 is read as that
(`declared`). Lone surrogates go both ways unchanged (`surrogatepass`), so the
page's own bytes come out as they went in. Any other stream passes through as is;
a UTF-32 BOM (FF FE 00 00) is left alone too, for the locator to refuse.
"""

from __future__ import annotations

from typing import Final

_BOMS: Final = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_UTF32LE_BOM: Final = b"\xff\xfe\x00\x00"
_SNIFF: Final = len(_UTF32LE_BOM)


def _complete_utf8(data: bytes) -> int:
    """The length of `data` up to a UTF-8 sequence cut at its end."""
    n = len(data)
    i = n - 1
    while i >= 0 and n - i <= 3 and data[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0 or data[i] < 0xC0:
        return n
    need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
    return i if n - i < need else n


class Utf16Bridge:
    def __init__(self, declared: str | None = None) -> None:
        """`declared`: "utf-16-le" | "utf-16-be" from the Content-Type, else None."""
        self._declared = declared
        self._head = b""                # bytes held until the BOM is known
        self._decided = False
        self.codec: str | None = None   # "utf-16-le" | "utf-16-be" once seen; None: as is
        self._odd = b""                 # UTF-16 bytes waiting for the rest of their character
        self._pending = b""             # the start of a UTF-8 sequence cut by a chunk

    @property
    def decided(self) -> bool:
        return self._decided

    @property
    def holding(self) -> bool:
        """Bytes are held back: the stream must keep going through the bridge."""
        return not self._decided or bool(self._odd or self._pending)

    def to_utf8(self, data: bytes, final: bool = False) -> bytes:
        if not self._decided:
            data = self._head + data
            if len(data) < _SNIFF and not final and _could_be_bom(data):
                self._head = data
                return b""
            self._head, self._decided = b"", True
            if not data.startswith(_UTF32LE_BOM):
                self.codec = _BOMS.get(data[:2], self._declared)
        if self.codec is None:
            return data
        data = self._odd + data if self._odd else data
        cut = len(data) & ~1
        if cut and not final:
            # A high surrogate waits for its pair: the stages see whole characters.
            unit = data[cut - 2] if self.codec == "utf-16-be" else data[cut - 1]
            if 0xD8 <= unit <= 0xDB:
                cut -= 2
        self._odd = data[cut:]
        return data[:cut].decode(self.codec, "surrogatepass").encode("utf-8", "surrogatepass")

    def from_utf8(self, data: bytes) -> bytes:
        if self.codec is None:
            return data
        data = self._pending + data if self._pending else data
        cut = _complete_utf8(data)
        self._pending = data[cut:]
        return data[:cut].decode("utf-8", "surrogatepass").encode(self.codec, "surrogatepass")

    def finish(self) -> bytes:
        """What is left for the end of the document (a dangling odd byte, as it came)."""
        if self.codec is None:
            return b""
        out = self._pending.decode("utf-8", "replace").encode(self.codec, "surrogatepass")
        out, self._pending = out + self._odd, b""
        self._odd = b""
        return out


def _could_be_bom(data: bytes) -> bool:
    return any(bom.startswith(data) or data.startswith(bom) for bom in _BOMS)
