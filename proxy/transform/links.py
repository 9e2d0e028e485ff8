"""Rewrite absolute upstream-origin URLs in a streamed document to the public origin.

Owns one whole-document replacement: `https://ats.example`, `http://…`,
protocol-relative `//ats.example` and their JSON-escaped forms (`https:\\/\\/…`,
common in JSON-LD and inline scripts) become the public origin wherever they
stand — href, src, action, srcset, meta refresh, JSON-LD, scripts — with the
host matched as a whole: `ats.example.evil.com`, `ats.example-foo`,
`ats.example:8443` (another port) and `ats.example@evil.com` (userinfo) are left
alone. Percent-encoded URLs (`https%3A%2F%2F…`) are not rewritten.

Scheme-carrying matches get the public scheme; protocol-relative ones stay
protocol-relative (the page is served on the public scheme).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Before a match: nothing that could make it part of a longer scheme or path.
_LEFT: Final = rb"(?<![A-Za-z0-9+.\-/:\\])"


def _origin_parts(origin: bytes) -> tuple[bytes, bytes, int | None]:
    u = urlsplit(origin.decode("ascii"))
    if u.scheme not in _DEFAULT_PORTS or not u.hostname:
        raise ValueError(f"not an http(s) origin: {origin!r}")
    port = u.port if u.port != _DEFAULT_PORTS[u.scheme] else None
    return u.scheme.encode(), u.hostname.encode("idna"), port


class LinkRewriter:
    """`feed(chunk) -> bytes`, `finish() -> bytes`: the same output for any chunking."""

    def __init__(self, upstream_origin: bytes, public_origin: bytes) -> None:
        _, host, port = _origin_parts(upstream_origin)
        scheme, pub_host, pub_port = _origin_parts(public_origin)
        authority = re.escape(host) + (b":" + str(port).encode() if port else b"(?::(?:80|443))?")
        # After the authority: not more host, not a port, not userinfo.
        right = rb"(?![A-Za-z0-9_.\-@]|:[0-9])"
        self._re = re.compile(
            _LEFT + rb"(?P<scheme>https?:)?(?P<slashes>//|\\/\\/)" + authority + right, re.I)
        self._needle = host.lower()
        self._scheme = scheme + b":"
        self._authority = pub_host + (b":" + str(pub_port).encode() if pub_port else b"")
        # Longest match plus the lookahead's two bytes; held back between chunks.
        self._hold = len(b"https:\\/\\/") + len(host) + len(b":443") + 2
        self._carry = b""           # bytes not yet emitted
        self._ctx = b""             # the byte before _carry, for the left boundary

    def _replace(self, m: re.Match[bytes]) -> bytes:
        scheme = self._scheme if m.group("scheme") else b""
        return scheme + m.group("slashes") + self._authority

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        if self._needle not in data.lower():
            # No host anywhere: emit all but what could begin a match.
            return self._emit(data, max(0, len(data) - self._hold))
        start = len(self._ctx)
        buf = self._ctx + data
        out: list[bytes] = []
        pos = start
        limit = len(buf) - self._hold
        for m in self._re.finditer(buf, start):
            if m.end() + 2 > len(buf):      # the boundary after it is not known yet
                limit = min(limit, m.start())
                break
            out.append(buf[pos:m.start()])
            out.append(self._replace(m))
            pos = m.end()
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self._ctx = buf[cut - 1:cut] if cut > 0 else self._ctx
        self._carry = buf[cut:]
        return b"".join(out)

    def _emit(self, data: bytes, cut: int) -> bytes:
        if cut > 0:
            self._ctx = data[cut - 1:cut]
        self._carry = data[cut:]
        return data[:cut]

    def finish(self) -> bytes:
        buf, pos = self._ctx + self._carry, len(self._ctx)
        out: list[bytes] = []
        for m in self._re.finditer(buf, pos):
            out += (buf[pos:m.start()], self._replace(m))
            pos = m.end()
        out.append(buf[pos:])
        self._carry = b""
        return b"".join(out)
