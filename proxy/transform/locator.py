"""Find where the head snippet goes in an HTML byte stream fed in any chunking.

Owns a tokenizer-lite that follows the HTML5 tokenizer closely enough to know
where the document head ends: the real `</head>`, or, as an HTML5 parser would
close the head implicitly, the first start tag that cannot live in a head, an
end tag `</body>`/`</html>`/`</br>`, or the first non-whitespace text. So a
snippet placed there always lands inside `<head>`, after any BOM, DOCTYPE and
`<html>` start tag. Comments, bogus comments (`<!…>`, `<?…>`, CDATA in HTML),
raw text (`script`, `style`, `noscript`, …), RCDATA (`title`, `textarea`),
attribute values and `<template>` contents are skipped.

No I/O: `feed()` returns the bytes that are certainly before the insertion
point; only an undecided token (a tag, or a possible end tag at the end of raw
text) is held back. Transitions of the tag states are data (`TAG_TABLE`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from proxy.transform.head_tokens import (  # noqa: F401  (TAG_TABLE, states: importable here)
    ASCII_ALPHA,
    BOGUS,
    COMMENT,
    COMMENT_END,
    DATA,
    EMIT,
    HEAD_ENDING_END_TAGS,
    HEAD_RUN,
    HEAD_RUN_NO_META,
    HEAD_TAGS,
    NON_WS,
    PLAINTEXT,
    RAW,
    RAW_END,
    RAW_TEXT,
    TAG_END,
    TAG_NAME,
    TAG_TABLE,
    TEXT_RUN,
    WHOLE_TAG,
)

UTF8_BOM: Final = b"\xef\xbb\xbf"
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
MAX_TOKEN: Final = 64 * 1024        # a longer tag: insert before it rather than hold more

MetaHook = Callable[[bytes], "bytes | None"]


def _match_end(pattern: re.Pattern[bytes], buf: bytes, pos: int) -> int:
    m = pattern.match(buf, pos)       # the run patterns match the empty string too
    return m.end() if m else pos


class HeadLocator:
    """Feed bytes; `found` turns True once the insertion point is reached.

    `feed()` returns bytes that precede the insertion point; after `found`,
    `rest()` hands back the unconsumed bytes (which start at the insertion
    point). `meta_hook`, when given, sees each complete `<meta …>` start tag of
    the head and may return replacement bytes (used for CSP in `<meta>`). With
    `meta_marker`, it need only see the metas the marker occurs in: while the
    marker is nowhere ahead, metas are skipped like any other head tag.
    """

    def __init__(self, meta_hook: MetaHook | None = None,
                 meta_marker: re.Pattern[bytes] | None = None) -> None:
        self.found = False
        self.gave_up = False            # not an ASCII-compatible stream: insert nothing
        self._meta_hook = meta_hook
        self._meta_marker = meta_marker
        self._run = HEAD_RUN if meta_hook is None else HEAD_RUN_NO_META
        self._buf = b""
        self._pos = 0                   # scan position in _buf
        self._started = False           # BOM check done
        self._state = DATA
        self._tok = 0                   # start of the held token in _buf
        self._end_tag = False
        self._name = b""
        self._raw_end: re.Pattern[bytes] | None = None
        self._template_depth = 0

    def feed(self, data: bytes) -> bytes:
        if self.gave_up:
            return data
        self._buf = self._buf + data if self._buf else data
        if self.found:
            return b""
        return self._scan(final=False)

    def finish(self) -> bytes:
        """End of stream: the insertion point is wherever the scan stopped."""
        if not (self.found or self.gave_up):
            out = self._scan(final=True)
            if not self.found:
                # EOF in a comment or raw text: what the scan held back (a possible
                # `--!>` or end tag) is text of the document, before the insertion point.
                self.found = True
                out, self._buf = out + self._buf, b""
                self._tok = self._pos = 0
            return out
        return b""

    def rest(self) -> bytes:
        rest, self._buf = self._buf[self._tok:], b""
        self._tok = self._pos = 0
        return rest

    # -- scanning ---------------------------------------------------------------

    def _scan(self, final: bool) -> bytes:
        buf = self._buf
        if not self._started:
            if not final and len(buf) < 3 and (
                    UTF8_BOM.startswith(buf) or any(b.startswith(buf) for b in UTF16_BOMS)):
                return b""
            self._started = True
            if buf.startswith(UTF8_BOM):
                self._pos = self._tok = 3
            elif buf[:2] in UTF16_BOMS:
                self.gave_up = True
                self._buf = b""
                return buf
        if self._meta_marker is not None:
            # no marker ahead: no `<meta>` ahead the hook wants, skip them like others
            ahead = self._meta_marker.search(buf, self._pos) is not None
            self._run = HEAD_RUN_NO_META if ahead else HEAD_RUN
        while not self.found and self._step(final):
            pass
        # Everything before the held token is decided.
        buf, cut = self._buf, self._tok
        if not self.found and self._pos - cut > MAX_TOKEN:
            self.found = True       # overlong tag: the point before it is still in the head
        out = buf[:cut]
        self._buf = buf[cut:]
        self._pos -= cut
        self._tok = 0
        return out

    def _step(self, final: bool) -> bool:
        """Advance one transition; False when more input is needed."""
        buf = self._buf
        state, pos, n = self._state, self._pos, len(buf)
        if state == DATA:
            if self._template_depth == 0:
                run = self._run.match(buf, pos)
                pos = run.end() if run else pos
                self._pos = self._tok = pos
            if self._template_depth == 0 and (m := WHOLE_TAG.match(buf, pos)) is not None:
                self._tok = m.start(1) - 1
                self._end_tag = m.start(2) - self._tok == 2
                self._name = m.group(2).lower()
                return self._emit_tag(buf, m.end())
            text_end = _match_end(TEXT_RUN, buf, pos)
            if self._template_depth == 0:
                t = NON_WS.search(buf, pos, text_end)
                if t:
                    return self._insert_at(t.start())
            self._pos = self._tok = text_end
            if text_end >= n:
                return False
            return self._tag_open(buf, text_end, final)
        if state in TAG_TABLE:
            return self._tag_step(buf, final)
        if state == COMMENT:
            m = COMMENT_END.search(buf, pos)
            if not m:
                self._pos = self._tok = max(pos, n - 3)     # keep a partial "--!"
                return False
            return self._to_data(m.end())
        if state == BOGUS:
            i = buf.find(b">", pos)
            if i < 0:
                self._pos = self._tok = n
                return False
            return self._to_data(i + 1)
        if state == RAW:
            assert self._raw_end is not None
            m = self._raw_end.search(buf, pos)
            if not m:
                keep = len(self._name) + 2
                self._pos = self._tok = max(pos, n - keep)
                return False
            if (end := TAG_END.match(buf, m.end() - 1)) is not None:
                self._raw_end = None
                return self._to_data(end.end())
            self._tok = m.start()
            self._pos = m.end() - 1             # at the delimiter after the name
            self._end_tag = True
            self._state = TAG_NAME              # the delimiter ends the name, as a tag's would
            return True
        # PLAINTEXT: text to the end, inside a template (else the head had ended)
        self._pos = self._tok = n
        return False

    def _tag_open(self, buf: bytes, lt: int, final: bool) -> bool:
        """At a `<` in data: decide what kind of token starts here."""
        n = len(buf)
        if lt + 1 >= n:
            if final:
                return self._text_lt(lt)
            return False
        c = buf[lt + 1]
        if c in ASCII_ALPHA:
            self._end_tag, self._state, self._pos = False, TAG_NAME, lt + 1
            return True
        if c == ord("/"):
            if lt + 2 >= n:
                return False if not final else self._text_lt(lt)
            c2 = buf[lt + 2]
            if c2 in ASCII_ALPHA:
                self._end_tag, self._state, self._pos = True, TAG_NAME, lt + 2
                return True
            if c2 == ord(">"):
                return self._to_data(lt + 3)            # `</>` is dropped
            self._state, self._pos = BOGUS, lt + 2
            return True
        if c == ord("?"):
            self._state, self._pos = BOGUS, lt + 1
            return True
        if c == ord("!"):
            if buf.startswith(b"<!--", lt):
                # `<!-->` and `<!--->` are complete (empty) comments
                if n < lt + 6 and not final:
                    return False
                if buf.startswith(b">", lt + 4):
                    return self._to_data(lt + 5)
                if buf.startswith(b"->", lt + 4):
                    return self._to_data(lt + 6)
                self._state, self._pos = COMMENT, lt + 4
                return True
            if n < lt + 4 and b"<!--".startswith(buf[lt:]) and not final:
                return False
            self._state, self._pos = BOGUS, lt + 2      # DOCTYPE, CDATA in HTML, other
            return True
        return self._text_lt(lt)

    def _text_lt(self, lt: int) -> bool:
        """A `<` that starts no tag is text, which ends the head."""
        if self._template_depth:
            self._pos = self._tok = lt + 1
            return True
        return self._insert_at(lt)

    def _tag_step(self, buf: bytes, final: bool) -> bool:
        run, on, default = TAG_TABLE[self._state]
        pos = _match_end(run, buf, self._pos)
        if pos >= len(buf):
            self._pos = pos
            if final:       # EOF inside a tag drops it: insert before it
                self.found = True
            return False
        if self._state == TAG_NAME:
            self._name = buf[self._tok + (2 if self._end_tag else 1):pos].lower()
        nxt, consume = on.get(buf[pos], default)
        self._pos = pos + 1 if consume else pos
        if nxt != EMIT:
            self._state = nxt
            return True
        return self._emit_tag(buf, self._pos)

    def _emit_tag(self, buf: bytes, end: int) -> bool:
        name, end_tag = self._name, self._end_tag
        if self._raw_end is not None:
            # the end tag that closed a raw-text element
            self._raw_end = None
            return self._to_data(end)
        if self._template_depth:
            if name == b"template":
                self._template_depth += -1 if end_tag else 1
            elif not end_tag:
                return self._enter_content(name, end)
            return self._to_data(end)
        if end_tag:
            if name in HEAD_ENDING_END_TAGS:
                return self._insert_at(self._tok)
            return self._to_data(end)
        if name not in HEAD_TAGS:
            return self._insert_at(self._tok)
        if name == b"template":
            self._template_depth = 1
            return self._to_data(end)
        if name == b"meta" and self._meta_hook is not None:
            new = self._meta_hook(buf[self._tok:end])
            if new is not None:
                self._buf = buf[:self._tok] + new + buf[end:]
                end = self._tok + len(new)
        return self._enter_content(name, end)

    def _enter_content(self, name: bytes, end: int) -> bool:
        if name in RAW_TEXT:
            self._raw_end = RAW_END[name]
            self._state, self._pos, self._tok = RAW, end, end
            self._name = name
            return True
        if name == b"plaintext":
            self._state, self._pos, self._tok = PLAINTEXT, end, end
            return True
        return self._to_data(end)

    def _to_data(self, pos: int) -> bool:
        self._state, self._pos, self._tok = DATA, pos, pos
        return True

    def _insert_at(self, pos: int) -> bool:
        self.found = True
        self._tok = self._pos = pos
        return False
