"""The streaming HTML transform as one object: decode → rewrite links → inject → encode.

`HtmlTransform` is what the request path uses for a response `should_transform`
accepted; it is pure (bytes in, bytes out). It also keeps the first
`observe` decoded bytes (after link rewriting, before injection, so the
proxy's own snippets are never seen) as `head_bytes` for the rules engine's
body matchers and extractors, sparing a second decode.

Errors from `codecs` (`CodecError`, `DecompressionBombError`) propagate: by
then part of the body may have been sent, so the caller ends the response.
"""

from __future__ import annotations

from typing import Final

from proxy.transform import codecs
from proxy.transform.csp import META_MARKER, CspNeeds, rewrite_meta_tag
from proxy.transform.inject import Injector
from proxy.transform.links import LinkRewrite, LinkRewriter

DEFAULT_OBSERVE: Final = 256 * 1024


class NotTransformable(ValueError):
    """The Content-Encoding is unknown or stacked: pass the body through as is."""


class HtmlTransform:
    def __init__(self, content_encoding: str | None, head_snippet: bytes,
                 body_snippet: bytes = b"", rewrite: LinkRewrite | None = None,
                 max_decoded: int = codecs.DEFAULT_MAX_DECODED,
                 observe: int = DEFAULT_OBSERVE, meta_csp: CspNeeds | None = None,
                 nonce: str | None = None) -> None:
        """`rewrite` is (upstream origin, public origin), e.g.
        (b"https://ats.example", b"https://careers.acme.example"). With
        `meta_csp`, a `<meta http-equiv="Content-Security-Policy">` in the head is
        rewritten like the headers (`nonce` as chosen by `csp.apply_csp`)."""
        coding = codecs.normalize(content_encoding)
        if coding is None:
            raise NotTransformable(f"content-coding {content_encoding!r}")
        self.coding = coding
        self._decoder = codecs.decoder(coding, max_decoded)
        self._encoder = codecs.encoder(coding)
        self._links = LinkRewriter(*rewrite) if rewrite else None
        hook = None
        if meta_csp is not None:
            needs = meta_csp

            def hook(tag: bytes) -> bytes | None:
                return rewrite_meta_tag(tag, needs, nonce)
        self._injector = Injector(head_snippet, body_snippet, hook, META_MARKER)
        self._observe = observe
        self._observed: list[bytes] = []
        self._observed_len = 0
        self.observed_complete = observe <= 0
        self._passthrough = False
        self._update_passthrough()

    @property
    def head_bytes(self) -> bytes:
        """The first `observe` bytes of the decoded, link-rewritten document."""
        if len(self._observed) > 1:
            self._observed = [b"".join(self._observed)]
        return self._observed[0] if self._observed else b""

    def _update_passthrough(self) -> None:
        self._passthrough = (self.coding == "identity" and self._links is None
                             and self.observed_complete and self._injector.passthrough)

    def _see(self, data: bytes) -> None:
        room = self._observe - self._observed_len
        if data and room > 0:
            part = data[:room]
            self._observed.append(part)
            self._observed_len += len(part)
        if self._observed_len >= self._observe:
            self.observed_complete = True

    def feed(self, chunk: bytes) -> bytes:
        if self._passthrough:
            return chunk
        data = self._decoder.decode(chunk)
        if self._links is not None:
            data = self._links.feed(data)
        if not self.observed_complete:
            self._see(data)
        data = self._injector.feed(data)
        out = self._encoder.encode(data)
        if self._injector.passthrough:
            self._update_passthrough()
        return out

    def finish(self, tail: bytes = b"") -> bytes:
        """The rest of the document; `tail` (decoded bytes) goes at its very end."""
        data = self._decoder.finish()
        if self._links is not None:
            data = self._links.feed(data) + self._links.finish()
        if not self.observed_complete:
            self._see(data)
            self.observed_complete = True
        data = self._injector.feed(data) + self._injector.finish() + tail
        return self._encoder.encode(data) + self._encoder.finish()
