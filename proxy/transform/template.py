"""A whole page's transform, done once and filled in per visitor.

Career sites serve the same bytes for a job page to every visitor; only the
snippets (visitor id, event ids) differ between two transformed copies. For a body
that arrived whole, `PageTemplate.build` runs the real transform (decode, rewrite
links, find the injection points) with placeholders for the snippets and keeps
the result split at them; `render` joins the parts around this response's
snippets and encodes. `TemplateCache` keeps templates by the upstream's exact
bytes, so the same page from the upstream costs a dict lookup and a join.

A page whose transform depends on the snippets themselves is not templated:
one with a `<meta http-equiv="Content-Security-Policy">` (rewritten with the
snippet's hashes), or one with a NUL byte (the placeholders' delimiter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cachetools import LRUCache

from proxy.transform import codecs
from proxy.transform.csp import META_MARKER, is_csp_meta
from proxy.transform.inject import Injector
from proxy.transform.links import LinkRewrite, LinkRewriter

MAX_BODY: Final = 512 * 1024            # larger bodies stream through the transform
CACHE_BYTES: Final = 16 * 1024 * 1024   # upstream bodies + templates kept, per process
_HEAD: Final = b"\x00h\x00"
_BODY: Final = b"\x00b\x00"
_SLOTS: Final = {b"h": 0, b"b": 1}


class NotTemplatable(Exception):
    """This page's transform depends on the snippets: transform it as a stream."""


class PageTemplate:
    __slots__ = ("coding", "observed", "parts", "size")

    def __init__(self, coding: str, parts: tuple[tuple[bytes, int], ...], size: int) -> None:
        self.coding = coding
        self.parts = parts          # (literal, slot after it: 0 head, 1 body, -1 none)
        self.size = size
        self.observed: bytes | None = None

    @classmethod
    def build(cls, raw: bytes, coding: str, *, head: bool, body: bool,
              rewrite: LinkRewrite | None, meta_csp: bool,
              max_decoded: int = codecs.DEFAULT_MAX_DECODED) -> PageTemplate:
        """Raises NotTemplatable, or CodecError for a body that does not decode."""
        dec = codecs.decoder(coding, max_decoded)
        doc = dec.decode(raw) + dec.finish()
        if b"\x00" in doc:
            raise NotTemplatable("NUL in the document")
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
        doc = self.document(head, body, tail)
        if self.coding == "identity":
            return doc
        enc = codecs.encoder(self.coding)
        return enc.encode(doc) + enc.finish()

    def head_bytes(self, limit: int) -> bytes:
        """The first `limit` bytes of the decoded, link-rewritten document (no snippets)."""
        if self.observed is None:
            self.observed = b"".join(lit for lit, _ in self.parts)[:limit]
        return self.observed


_Key = tuple[str, bool, bool, bool, "LinkRewrite | None", bytes]


class TemplateCache:
    """Templates by (coding, snippets present, rewrite, upstream bytes), bounded in bytes.

    A page is kept the second time its bytes are seen, so pages unique to one
    response (a CSRF token in the form) never displace the shared ones."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        # A page that cannot have a template is kept as its size, so it is not tried again.
        self._cache: LRUCache[_Key, PageTemplate | int] = LRUCache(
            max_bytes, getsizeof=lambda t: t.size if isinstance(t, PageTemplate) else t)
        self._seen: LRUCache[int, bool] = LRUCache(4096)
        self.hits = self.misses = 0

    def get(self, raw: bytes, coding: str, *, head: bool, body: bool,
            rewrite: LinkRewrite | None, meta_csp: bool) -> PageTemplate | None:
        """The template for this page; None when it cannot have one (transform it as a
        stream). CodecError propagates."""
        if len(raw) > MAX_BODY:
            return None
        key: _Key = (coding, head, body, meta_csp, rewrite, raw)
        try:
            found = self._cache[key]
            self.hits += 1
            return found if isinstance(found, PageTemplate) else None
        except KeyError:
            pass
        self.misses += 1
        try:
            template: PageTemplate | None = PageTemplate.build(
                raw, coding, head=head, body=body, rewrite=rewrite, meta_csp=meta_csp)
        except NotTemplatable:
            template = None
        h = hash(key)
        if self._seen.pop(h, False):
            self._cache[key] = template if template is not None else len(raw)
        else:
            self._seen[h] = True
        return template
