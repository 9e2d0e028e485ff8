"""Insert snippets into a streamed HTML document: one at the end of the head,
one before the last `</body>`.

Owns the holding-back policy. Until the head snippet is placed, only the
token `HeadLocator` is undecided about is held; after it, chunks pass straight
through (no copy) unless a body snippet is pending, in which case the bytes
from the last `</body>` seen onward are held — at most `MAX_BODY_TAIL` bytes,
past which that candidate is given up and the snippet goes to a later
`</body>` or the end of the document.
"""

from __future__ import annotations

from typing import Final

from proxy.transform.locator import HeadLocator, MetaHook

MAX_BODY_TAIL: Final = 64 * 1024
_BODY_END: Final = b"</body"


class Injector:
    """`feed(chunk) -> bytes` and `finish() -> bytes`; the concatenated output is
    the document with `head` and `body` inserted, whatever the chunking."""

    def __init__(self, head: bytes, body: bytes = b"", meta_hook: MetaHook | None = None) -> None:
        self._head = head
        self._body = body
        self._locator: HeadLocator | None = (
            HeadLocator(meta_hook) if head or meta_hook is not None else None)
        self._tail = b""            # body mode: held bytes (a candidate `</body` or a partial one)
        self._candidate = False     # _tail starts with `</body`
        self.head_placed = self._locator is None
        self.body_placed = not body
        self.passthrough = self.head_placed and self.body_placed

    def feed(self, chunk: bytes) -> bytes:
        if self.passthrough:
            return chunk
        if self._locator is not None:
            out = self._locator.feed(chunk)
            if not self._locator.found:
                if self._locator.gave_up:
                    self._give_up()
                return out
            rest = self._place_head()
            return out + self._head + self._body_feed(rest)
        return self._body_feed(chunk)

    def finish(self) -> bytes:
        out = b""
        if self._locator is not None:
            out = self._locator.finish()
            if self._locator.gave_up:
                self._give_up()
                return out
            out += self._head + self._body_feed(self._place_head())
        if self.body_placed:
            return out + self._tail
        self.body_placed = self.passthrough = True
        tail, self._tail = self._tail, b""
        if self._candidate:
            return out + self._body + tail
        return out + tail + self._body

    def _place_head(self) -> bytes:
        assert self._locator is not None
        rest = self._locator.rest()
        self._locator = None
        self.head_placed = True
        self.passthrough = self.body_placed
        return rest

    def _give_up(self) -> None:
        """Not an ASCII-compatible document: insert nothing at all."""
        self._locator = None
        self.head_placed = self.body_placed = self.passthrough = True

    def _body_feed(self, chunk: bytes) -> bytes:
        if self.body_placed:
            return chunk
        data = self._tail + chunk if self._tail else chunk
        # `bytes.lower` keeps offsets and only touches ASCII letters.
        i = data.lower().rfind(_BODY_END)
        if i >= 0:
            self._candidate = True
        elif self._candidate:
            i = 0
        if i >= 0 and len(data) - i <= MAX_BODY_TAIL:
            self._tail = data[i:]
            return data[:i]
        # No (live) candidate: keep only what could be the start of `</body`.
        self._candidate = False
        keep = _partial_suffix(data)
        self._tail = data[len(data) - keep:] if keep else b""
        return data[:len(data) - keep]


def _partial_suffix(data: bytes) -> int:
    """Length of the longest suffix of data that is a proper prefix of `</body`."""
    tail = data[-(len(_BODY_END) - 1):].lower()
    for k in range(len(tail), 0, -1):
        if _BODY_END.startswith(tail[-k:]):
            return k
    return 0
