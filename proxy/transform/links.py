"""Rewrite absolute upstream-origin URLs in a streamed document to the public origin.

Owns one whole-document replacement: `https://ats.example`, `http://…`,
protocol-relative `//ats.example` and their JSON-escaped forms (`https:\\/\\/…`,
common in JSON-LD and inline scripts) become the public origin wherever they
stand — href, src, action, srcset, meta refresh, JSON-LD, scripts — with the
host matched as a whole: `ats.example.evil.com`, `ats.example-foo`,
`ats.example:8443` (another port) and `ats.example@evil.com` (userinfo) are left
alone. Percent-encoded URLs (`https%3A%2F%2F…`) are not rewritten.

Every form is replaced by the public origin itself (`https://careers…`): valid
in attributes, CSS, JavaScript and JSON strings alike.

`[[routes]]` upstreams (`routes`: (upstream URL, public prefix) pairs) are
rewritten first, in the same forms, to the public origin plus the prefix:
`https://boards.greenhouse.io/embed/job_app?…` → `https://careers…/apply/job_app?…`.
The upstream's path is matched case-sensitively and as a whole (it ends with "/"),
so `/embedded/…` or another path on that host is left alone.

Speed (Python's regex engine only searches quickly for a pattern that starts
with a case-exact literal): when every occurrence of the host is lowercase and
no default port follows it — nearly every page — one substitution runs over the
reversed bytes, where the host comes first and the scheme after it. Otherwise
the matches are found on a lowercased copy and spliced into the original. The
compiled patterns are cached per origin pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The forms that may precede the host, longest first (the leftmost start wins).
_PREFIXES: Final = (b"https:\\/\\/", b"http:\\/\\/", b"https://", b"http://", b"\\/\\/", b"//")
_PREFIX_LEN: Final = (0, *map(len, _PREFIXES))      # by the number of the group that matched
# Before a match: nothing that could make it part of a longer scheme or path.
_LEFT: Final = rb"[A-Za-z0-9+.\-/:\\]"
# After the authority: not more host, not a port, not userinfo.
_RIGHT_BYTE: Final = rb"[A-Za-z0-9_.\-@]"

# Bytes no match contains and the boundaries around a host accept: a chunk is
# cut at the last of them, so a match never straddles a cut and each piece is
# rewritten on its own.
_DELIMITERS: Final = b'<>"\' \t\n\r,;()'
_LAST_DELIMITER: Final = re.compile(rb"(?s:.*)[" + re.escape(_DELIMITERS) + rb"]")
_NEAR_END: Final = 512              # look for the last delimiter here first
MAX_CARRY: Final = 64 * 1024       # a run without any delimiter is cut anyway past this

RouteLinks = tuple[tuple[bytes, bytes], ...]    # (upstream URL, public path prefix)
# (upstream origin, public origin[, routes]): what a page's links are rewritten with;
# hashable, so it is part of the page-template cache key.
LinkRewrite = tuple[bytes, bytes] | tuple[bytes, bytes, RouteLinks]


def _origin_parts(origin: bytes) -> tuple[bytes, bytes, int | None]:
    u = urlsplit(origin.decode("ascii"))
    if u.scheme not in _DEFAULT_PORTS or not u.hostname:
        raise ValueError(f"not an http(s) origin: {origin!r}")
    port = u.port if u.port != _DEFAULT_PORTS[u.scheme] else None
    return u.scheme.encode(), u.hostname.encode("idna"), port


@dataclass(frozen=True, slots=True)
class _Spec:
    needle: bytes                       # the lowercased host: absent, nothing to do
    public: bytes
    general: re.Pattern[bytes]          # on lowercased bytes, starts at the host
    reversed: re.Pattern[bytes] | None  # on reversed bytes, host case-exact; None: not usable
    reversed_public: bytes              # `reversed`'s replacement template
    port_forms: bool                    # a default port may follow the host: then `general`
    hold: int                           # longest match plus the bytes around it checked


def _reversed_pattern(auth: bytes) -> re.Pattern[bytes] | None:
    if not auth.strip(b"htps"):
        return None     # a host made of scheme letters could overlap a scheme: not worth it
    rauth = re.escape(auth[::-1])
    return re.compile(
        rauth + rb"(?<!" + _RIGHT_BYTE + rauth + rb")(?<![0-9]:" + rauth + rb")"
        + rb"(?://|/\\/\\)(?i::s?ptth)?(?!" + _LEFT + rb")")


@lru_cache(maxsize=64)
def _spec(upstream_origin: bytes, public_origin: bytes) -> _Spec:
    _, host, port = _origin_parts(upstream_origin)
    scheme, pub_host, pub_port = _origin_parts(public_origin)
    host = host.lower()
    auth = host + (b":%d" % port if port else b"")
    esc = re.escape(auth)
    # One branch per prefix: the text before the host is that prefix, and the
    # byte before the prefix (if any) is not one that would extend it.
    branches = [rb"(?<=" + re.escape(p) + esc + rb")(?<!" + _LEFT.lower() + re.escape(p) + esc
                + rb")()" for p in _PREFIXES]
    general = re.compile(esc + rb"(?:" + b"|".join(branches) + rb")"
                         + (b"" if port else rb"(?::(?:80|443))?")
                         + rb"(?!" + _RIGHT_BYTE.lower() + rb"|:[0-9])")
    public = scheme + b"://" + pub_host + (b":%d" % pub_port if pub_port else b"")
    return _Spec(
        needle=host, public=public, general=general,
        reversed=_reversed_pattern(auth),
        reversed_public=public[::-1].replace(b"\\", b"\\\\"),
        port_forms=not port,
        hold=len(b"https:\\/\\/") + len(auth) + len(b":443") + 2)


def rewrite(spec: _Spec, data: bytes) -> bytes:
    """Every match in `data`, a piece that starts and ends at a delimiter (or
    at the document's start or end), replaced."""
    low = data.lower()
    needle = spec.needle
    found = low.count(needle)
    if not found:
        return data
    if (spec.reversed is not None and data.count(needle) == found
            and not (spec.port_forms and needle + b":" in low)):
        return spec.reversed.sub(spec.reversed_public, data[::-1])[::-1]
    parts: list[bytes] = []
    prev = 0
    for m in spec.general.finditer(low):
        parts.append(data[prev:m.start() - _PREFIX_LEN[m.lastindex or 0]])
        parts.append(spec.public)
        prev = m.end()
    parts.append(data[prev:])
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _RouteSpec:
    needle: bytes                       # absent, nothing to do
    pattern: re.Pattern[bytes]
    public: bytes
    hold: int
    exact: bool = False                 # the needle is a case-sensitive path, not a host


@lru_cache(maxsize=64)
def _route_spec(upstream_url: bytes, public_origin: bytes, prefix: bytes) -> _RouteSpec:
    if upstream_url.startswith(b"/"):   # a mount: path-absolute references in its pages
        return _RouteSpec(upstream_url, re.compile(
            rb"(?<=[\"'=(])" + re.escape(upstream_url) + rb"(?!/)"), prefix,
            hold=len(upstream_url) + 2, exact=True)
    u = urlsplit(upstream_url.decode("ascii"))
    _, host, port = _origin_parts(f"{u.scheme}://{u.netloc}".encode())
    scheme, pub_host, pub_port = _origin_parts(public_origin)
    path = (u.path or "/").encode()
    auth = re.escape(host.lower()) + (b":%d" % port if port else rb"(?::(?:80|443))?")
    forms = []
    for slash in (b"/", b"\\/"):          # plain, and JSON-escaped ("\/")
        s = re.escape(slash)
        forms.append(rb"(?i:https?:)?" + s + s + rb"(?i:" + auth + rb")"
                     + re.escape(path).replace(rb"/", s))
    pattern = re.compile(rb"(?<!" + _LEFT + rb")(?:" + b"|".join(forms) + rb")")
    public = scheme + b"://" + pub_host + (b":%d" % pub_port if pub_port else b"") + prefix
    return _RouteSpec(host.lower(), pattern, public,
                      hold=len(b"https:\\/\\/") + len(host) + 6 + 2 * len(path) + 2)


def _rewrite_routes(specs: tuple[_RouteSpec, ...], data: bytes) -> bytes:
    low: bytes | None = None
    for spec in specs:
        if spec.exact:
            if spec.needle in data:
                data = spec.pattern.sub(spec.public, data)
                low = None
            continue
        if low is None:
            low = data.lower()
        if spec.needle in low:
            data = spec.pattern.sub(spec.public, data)
            low = None
    return data


def _last_delimiter(data: bytes) -> int:
    near = max(0, len(data) - _NEAR_END)
    m = _LAST_DELIMITER.match(data, near) or (near and _LAST_DELIMITER.match(data))
    return m.end() - 1 if m else -1


class LinkRewriter:
    """`feed(chunk) -> bytes`, `finish() -> bytes`: the same output for any chunking."""

    def __init__(self, upstream_origin: bytes, public_origin: bytes,
                 routes: RouteLinks = ()) -> None:
        self._spec = _spec(upstream_origin, public_origin)
        self._routes = tuple(_route_spec(url, public_origin, prefix) for url, prefix in routes)
        self._hold = max([self._spec.hold, *(r.hold for r in self._routes)])
        self._carry = b""

    def _rewrite(self, data: bytes) -> bytes:
        if self._routes:
            data = _rewrite_routes(self._routes, data)
        return rewrite(self._spec, data)

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        cut = _last_delimiter(data)
        if cut <= 0:
            if len(data) <= MAX_CARRY:
                self._carry = data
                return b""
            cut = len(data) - self._hold
        self._carry = data[cut:]
        return self._rewrite(data[:cut])

    def finish(self) -> bytes:
        data, self._carry = self._carry, b""
        return self._rewrite(data)
