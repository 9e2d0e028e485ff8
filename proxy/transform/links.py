"""Rewrite absolute upstream-origin URLs in a streamed document to the public origin.

Owns one whole-document replacement: `https://ats.example`, `http://…`,
protocol-relative `//ats.example` and their JSON-escaped forms (`https:\\/\\/…`,
common in JSON-LD and inline scripts) become the public origin wherever they
stand — href, src, action, srcset, meta refresh, JSON-LD, scripts — with the
host matched as a whole: `ats.example.evil.com`, `ats.example-foo`,
`ats.example:8443` (another port) and `ats.example@evil.com` (userinfo) are left
alone. Percent-encoded URLs (`https%3A%2F%2F…`) are not rewritten.

Every form is replaced by the public origin itself (`https://careers…`): valid
in attributes, CSS, JavaScript and JSON strings alike, and a constant
replacement keeps the substitution in C.
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


# Bytes no match contains and the boundary after a host accepts: a chunk is cut
# at the last of them, so a match never straddles a cut.
_DELIMITERS: Final = b'<>"\' \t\n\r,;()'
_DELIMITER_BYTES: Final = [bytes([c]) for c in _DELIMITERS]
MAX_CARRY: Final = 64 * 1024       # a run without any delimiter is cut anyway past this


class LinkRewriter:
    """`feed(chunk) -> bytes`, `finish() -> bytes`: the same output for any chunking."""

    def __init__(self, upstream_origin: bytes, public_origin: bytes) -> None:
        _, host, port = _origin_parts(upstream_origin)
        scheme, pub_host, pub_port = _origin_parts(public_origin)
        authority = re.escape(host) + (b":" + str(port).encode() if port else b"(?::(?:80|443))?")
        # After the authority: not more host, not a port, not userinfo.
        right = rb"(?![A-Za-z0-9_.\-@]|:[0-9])"
        # The leading class lets the regex engine skip quickly to candidate bytes.
        self._re = re.compile(rb"(?=[hH/\\])" + _LEFT + rb"(?:https?:)?(?://|\\/\\/)"
                              + authority + right, re.IGNORECASE)
        self._needle = host.lower()
        # One constant replacement keeps the substitution in C: the public origin.
        self._public = scheme + b"://" + pub_host + (b":%d" % pub_port if pub_port else b"")
        self._hold = len(b"https:\\/\\/") + len(host) + len(b":443") + 2
        self._carry = b""

    def _sub(self, data: bytes) -> bytes:
        if self._needle not in data.lower():
            return data
        return self._re.sub(self._public, data)

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        cut = max(map(data.rfind, _DELIMITER_BYTES))
        if cut <= 0:
            if len(data) <= MAX_CARRY:
                self._carry = data
                return b""
            cut = len(data) - self._hold
        self._carry = data[cut:]
        return self._sub(data[:cut])

    def finish(self) -> bytes:
        data, self._carry = self._carry, b""
        return self._sub(data)

