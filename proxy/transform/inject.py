"""Insert snippets into a streamed HTML document: one at the end of the head,
one before the last `</body>`.

Owns the holding-back policy. Until the head snippet is placed, only the
token `HeadLocator` is undecided about is held; after it, chunks pass straight
through (no copy) unless a body snippet is pending, in which case the bytes
from the last `</body>` seen (outside comments and raw text such as scripts)
onward are held — at most `MAX_BODY_TAIL` bytes, past which that candidate is
given up and the snippet goes to a later `</body>` or the end of the document.
"""

from __future__ import annotations

import re
from typing import Final

from proxy.transform.locator import HeadLocator, MetaHook

MAX_BODY_TAIL: Final = 64 * 1024
# Body mode, on lowercased bytes. The tokens that matter: `</body`, a comment, a
# raw-text element (a `</body` inside them does not count); everything else —
# text and other tags with their attribute values — is skipped by one regex.
_RAW = rb"script|style|textarea|title|xmp|iframe|noembed|noframes|noscript"
_DELIM = rb"(?=[\t\n\f\r />])"
_BODY_TOKENS: Final = re.compile(
    rb"<(?:(/body)" + _DELIM + rb"|(!--)|(" + _RAW + rb")" + _DELIM + rb")")
# The rest of a tag after `<`: quoted values may hold `>`. Written unrolled (runs
# of plain bytes, then one quoted value and a run at a time): the same matches
# as `(?:[^>"']|"[^"]*"|'[^']*')*>`, with fewer steps of the regex engine.
_TAG_REST_PATTERN = rb"""[^>"']*+(?:(?:"[^"]*+"|'[^']*+')[^>"']*+)*+>"""
_TAG_REST: Final = re.compile(_TAG_REST_PATTERN)
_BODY_SKIP: Final = re.compile(
    rb"[^<]*+(?:<(?!!--|/body" + _DELIM + rb"|(?:" + _RAW + rb")" + _DELIM + rb")"
    + _TAG_REST_PATTERN + rb"[^<]*+)*+")
_PARTIAL: Final = len(b"<noframes ") - 1    # longest token prefix a chunk can end with


class Injector:
    """`feed(chunk) -> bytes` and `finish() -> bytes`; the concatenated output is
    the document with `head` and `body` inserted, whatever the chunking."""

    def __init__(self, head: bytes, body: bytes = b"", meta_hook: MetaHook | None = None,
                 meta_marker: re.Pattern[bytes] | None = None) -> None:
        self._head = head
        self._body = body
        self._locator: HeadLocator | None = (
            HeadLocator(meta_hook, meta_marker) if head or meta_hook is not None else None)
        # Body mode: bytes held (from the last `</body` outside a comment, or a
        # partial token), where scanning resumes in them, and the candidate's offset.
        self._tail = b""
        self._scan = 0
        self._cand = -1
        self._until: bytes | None = None     # what ends the comment or raw text we are in
        self.head_placed = self._locator is None
        self.body_placed = not body
        self.passthrough = self.head_placed and self.body_placed
        self.inserted = False       # a snippet went in
        self.gave_up = False        # there were snippets, and this document takes none

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
        self.body_placed = self.passthrough = self.inserted = True
        tail, self._tail = self._tail, b""
        if self._cand >= 0:
            return out + tail[:self._cand] + self._body + tail[self._cand:]
        return out + tail + self._body

    def _place_head(self) -> bytes:
        assert self._locator is not None
        rest = self._locator.rest()
        self._locator = None
        self.head_placed = True
        self.inserted = self.inserted or bool(self._head)
        self.passthrough = self.body_placed
        return rest

    def _give_up(self) -> None:
        """Not an ASCII-compatible document: insert nothing at all."""
        self._locator = None
        self.gave_up = bool(self._head or self._body)
        self.head_placed = self.body_placed = self.passthrough = True

    def _body_feed(self, chunk: bytes) -> bytes:
        if self.body_placed:
            return chunk
        data = self._tail + chunk if self._tail else chunk
        # `bytes.lower` keeps offsets and only touches ASCII letters.
        low, pos, cand, n = data.lower(), self._scan, self._cand, len(data)
        waiting = False                         # a tag is cut by the chunk boundary
        while True:
            if self._until is not None:         # in a comment or raw text
                j = low.find(self._until, pos)
                if j < 0:
                    break
                pos, self._until = j + len(self._until), None
                continue
            skip = _BODY_SKIP.match(low, pos)          # text and ordinary tags, in C
            pos = skip.end() if skip else pos
            if pos >= n:
                break
            m = _BODY_TOKENS.match(low, pos)
            if m is not None and m.group(2):
                pos, self._until = m.end(), b"-->"
                continue
            end = _TAG_REST.match(low, m.end()) if m is not None else None
            if m is None or end is None:        # a tag cut by the chunk boundary
                if n - pos > MAX_BODY_TAIL:     # never closed: not a tag after all
                    pos += 1
                    continue
                waiting = True
                break
            if m.group(1):
                cand = pos
            else:
                self._until = b"</" + m.group(3)
            pos = end.end()
        # A token cut by the chunk boundary is looked at again with the next chunk.
        scan = pos if waiting else max(pos, n - _PARTIAL)
        if cand >= 0 and n - cand <= MAX_BODY_TAIL:
            cut = cand
        else:
            cand, cut = -1, scan
        self._tail, self._scan = data[cut:], scan - cut
        self._cand = cand - cut if cand >= 0 else -1
        return data[:cut]
