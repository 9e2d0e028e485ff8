"""A whole page's transform, done once and filled in per visitor.

Career sites serve the same bytes for a job page to every visitor; only the
snippets (visitor id, event ids) differ between two transformed copies. For a body
that arrived whole, `PageTemplate.build` runs the real transform (decode, rewrite
links, find the injection points) with placeholders for the snippets and keeps
the result split at them; `render` joins the parts around this response's
snippets and encodes. `TemplateCache` keeps templates by the upstream's exact
bytes, so the same page from the upstream costs a lookup, a comparison and a join.

A page whose transform depends on the snippets themselves is not templated:
one with a `<meta http-equiv="Content-Security-Policy">` (rewritten with the
snippet's hashes), one with a NUL byte (the placeholders' delimiter), or one in
UTF-16 (streamed through `charset.Utf16Bridge`).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from cachetools import LRUCache

from proxy.transform import codecs
from proxy.transform.csp import META_MARKER, is_csp_meta
from proxy.transform.inject import Injector
from proxy.transform.links import LinkRewrite, LinkRewriter
from proxy.transform.locator import UTF16_BOMS

MAX_BODY: Final = 512 * 1024            # larger bodies stream through the transform
CACHE_BYTES: Final = 16 * 1024 * 1024   # upstream bodies + templates kept, per process
_HEAD: Final = b"\x00h\x00"
_BODY: Final = b"\x00b\x00"
_SLOTS: Final = {b"h": 0, b"b": 1}


class NotTemplatable(Exception):
    """This page's transform depends on the snippets: transform it as a stream."""


class PageTemplate:
    __slots__ = ("coding", "injected", "observed", "parts", "size", "_around")

    def __init__(self, coding: str, parts: tuple[tuple[bytes, int], ...], size: int) -> None:
        self.coding = coding
        self.parts = parts          # (literal, slot after it: 0 head, 1 body, -1 none)
        self.size = size
        self.observed: bytes | None = None
        # The page has a place for a snippet (False: not one snippets can go into).
        self.injected = any(slot >= 0 for _, slot in parts)
        # The literals around the slots, and which slots: (head, body), (head,),
        # (body,) or () — the injector places each snippet once, the head's first.
        self._around = (tuple(lit for lit, _ in parts),
                        tuple(slot for _, slot in parts if slot >= 0))

    @classmethod
    def build(cls, raw: bytes, coding: str, *, head: bool, body: bool,
              rewrite: LinkRewrite | None, meta_csp: bool,
              max_decoded: int = codecs.DEFAULT_MAX_DECODED) -> PageTemplate:
        """Raises NotTemplatable, or CodecError for a body that does not decode."""
        dec = codecs.decoder(coding, max_decoded)
        doc = dec.decode(raw) + dec.finish()
        if b"\x00" in doc or doc[:2] in UTF16_BOMS:
            raise NotTemplatable("NUL in the document, or UTF-16")
        if rewrite is not None:
            links = LinkRewriter(*rewrite)
            doc = links.feed(doc) + links.finish()
        hook: Callable[[bytes], bytes | None] | None = None
        if meta_csp:
            def hook(tag: bytes) -> bytes | None:
                if is_csp_meta(tag):
                    raise NotTemplatable("a CSP meta tag")
                return None
        inj = Injector(_HEAD if head else b"", _BODY if body else b"", hook, META_MARKER)
        out = inj.feed(doc) + inj.finish()
        pieces = out.split(b"\x00")
        parts = tuple((pieces[i], _SLOTS[pieces[i + 1]] if i + 1 < len(pieces) else -1)
                      for i in range(0, len(pieces), 2))
        return cls(coding, parts, len(raw) + len(out))

    def document(self, head: bytes, body: bytes, tail: bytes = b"") -> bytes:
        """The decoded document with this response's snippets."""
        fill = (head, body)
        out = [x for lit, slot in self.parts for x in ((lit, fill[slot]) if slot >= 0 else (lit,))]
        out.append(tail)
        return b"".join(out)

    def render(self, head: bytes, body: bytes, tail: bytes = b"") -> bytes:
        return self.fill((head,), body, tail)

    def fill(self, head: Sequence[bytes], body: bytes, tail: bytes = b"") -> bytes:
        """`render` with the head snippet in parts: the page and its snippets are
        joined once, in one `join`."""
        lits, slots = self._around
        if slots == (0, 1):
            doc = b"".join((lits[0], *head, lits[1], body, lits[2], tail))
        elif slots == (0,):
            doc = b"".join((lits[0], *head, lits[1], tail))
        elif slots == (1,):
            doc = b"".join((lits[0], body, lits[1], tail))
        else:
            doc = self.document(b"".join(head), body, tail)
        if self.coding == "identity":
            return doc
        enc = codecs.encoder(self.coding)
        return enc.encode(doc) + enc.finish()

    def head_bytes(self, limit: int) -> bytes:
        """The first `limit` bytes of the decoded, link-rewritten document (no snippets)."""
        if self.observed is None:
            self.observed = b"".join(lit for lit, _ in self.parts)[:limit]
        return self.observed


_Key = tuple[str, bool, bool, bool, "LinkRewrite | None", int, bytes, bytes]
_Entry = tuple[bytes, "PageTemplate | int"]
_SAMPLE: Final = 64      # bytes of a page's start, and about as many spread through it


def _entry_size(entry: _Entry) -> int:
    kept = entry[1]
    return kept.size if isinstance(kept, PageTemplate) else kept


class _BytesLRU:
    """Entries by key, the least recently used dropped past `maxsize` bytes (an
    OrderedDict does the bookkeeping in C: a hit costs a lookup and a move)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.currsize = 0
        # Read directly by `TemplateCache.get`: a hit is its hottest path.
        self.data: OrderedDict[_Key, tuple[_Entry, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.data)

    def __setitem__(self, key: _Key, entry: _Entry) -> None:
        size = _entry_size(entry)
        if size > self.maxsize:
            return
        old = self.data.pop(key, None)
        if old is not None:
            self.currsize -= old[1]
        while self.data and self.currsize + size > self.maxsize:
            _, (_, dropped) = self.data.popitem(last=False)
            self.currsize -= dropped
        self.data[key] = (entry, size)
        self.currsize += size


class TemplateCache:
    """Templates by (coding, snippets present, rewrite, upstream bytes), bounded in bytes.

    A page is kept the second time its bytes are seen, so pages unique to one
    response (a CSRF token in the form) never displace the shared ones."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        # A page that cannot have a template is kept as its size, so it is not tried again.
        self._cache = _BytesLRU(max_bytes)
        self._seen: LRUCache[tuple[_Key, int], bool] = LRUCache(4096)
        self.hits = self.misses = 0

    def get(self, raw: bytes, coding: str, *, head: bool, body: bool,
            rewrite: LinkRewrite | None, meta_csp: bool) -> PageTemplate | None:
        """The template for this page; None when it cannot have one (transform it as a
        stream). CodecError propagates."""
        n = len(raw)
        if n > MAX_BODY:
            return None
        # Kept under its length and a sample of its bytes, so a lookup does not hash the
        # whole page (~1 µs per KB); the entry holds the page's bytes, compared in full
        # before its template is used.
        step = n // _SAMPLE or 1
        key = (coding, head, body, meta_csp, rewrite, n, raw[:_SAMPLE], raw[step - 1::step])
        data = self._cache.data
        found = data.get(key)
        if found is not None:
            data.move_to_end(key)
            if found[0][0] == raw:
                self.hits += 1
                kept = found[0][1]
                return kept if kept.__class__ is PageTemplate else None
        self.misses += 1
        try:
            template: PageTemplate | None = PageTemplate.build(
                raw, coding, head=head, body=body, rewrite=rewrite, meta_csp=meta_csp)
        except NotTemplatable:
            template = None
        seen = (key, zlib.crc32(raw))
        if self._seen.pop(seen, False):
            self._cache[key] = (raw, template if template is not None else len(raw))
        else:
            self._seen[seen] = True
        return template
