"""Header handling on both sides of the proxy: hop-by-hop, forwarding, origin rewriting.

Pure functions over raw header lists (`list[tuple[bytes, bytes]]`, as the upstream
transport sends and receives them). Hop-by-hop headers are removed *before* the
proxy adds its own, so `Connection: close, X-Forwarded-For` cannot delete them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from proxy.attribution.cookies import INTERNAL_COOKIES
from proxy.hosts import HostPolicy
from proxy.http.realip import real_ip, xff_values

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
})
# Set again by the proxy or by the transport's framing; never copied from the visitor.
REQUEST_OWNED = frozenset({b"host", b"content-length", b"expect"})
FORWARDING = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"forwarded", b"x-real-ip",
})
# The proxy's own: the request id it logs (a trusted front's kept, passed in by the caller).
REQUEST_ID = b"x-request-id"
# The proxy's own response header: events for the page's script (see proxy/handoff.py).
EVENTS_HEADER = "X-Careers-Edge-Events"
# Framing is the server's own for the visitor's connection; the events header is ours.
RESPONSE_OWNED = frozenset({b"content-length", EVENTS_HEADER.lower().encode()})
VIA = b"1.1 careers-edge"
SERVER = "careers-edge"       # our Server header: no versions to fingerprint
VIA_TEXT = VIA.decode()
_REQUEST_DROPPED = HOP_BY_HOP | REQUEST_OWNED | FORWARDING | {REQUEST_ID}
_INTERNAL = frozenset(n.encode() for n in INTERNAL_COOKIES)
# The names' common start ("ce_"): most Cookie headers lack it and are sent untouched.
_INTERNAL_MARK: bytes = os.path.commonprefix(sorted(_INTERNAL)) or b""
_RESPONSE_DROPPED = HOP_BY_HOP | RESPONSE_OWNED
# Names seen on nearly every response, decoded once.
_NAME_TEXT: dict[bytes, str] = {}
_NAME_TEXT_MAX = 512


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names a Connection header declares hop-by-hop."""
    names: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            names.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(names)


_NOTHING: frozenset[bytes] = frozenset()
# Connection values seen (nearly always `keep-alive` or `close`) -> what they name
# beyond the fixed hop-by-hop set.
_NAMED: dict[bytes, frozenset[bytes]] = {}
_NAMED_MAX = 256


def _named_extra(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Connection-named headers beyond the fixed hop-by-hop set (usually none:
    `Connection: keep-alive` or `close` name nothing else)."""
    value = None
    for name, v in headers:
        if len(name) == 10 and name.lower() == b"connection":
            if value is not None:           # several: their tokens together
                return connection_tokens(headers) - HOP_BY_HOP
            value = v
    if value is None:
        return _NOTHING
    named = _NAMED.get(value)
    if named is None:
        named = connection_tokens(((b"connection", value),)) - HOP_BY_HOP
        if len(value) <= 256:
            if len(_NAMED) >= _NAMED_MAX:
                _NAMED.clear()
            _NAMED[value] = named
    return named


class TrustedProxies:
    """`trusted_proxies` CIDRs, compiled once; answers for an address are remembered
    (a few balancers ask on every request)."""

    _CACHE = 4096

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._seen: dict[str, bool] = {}

    def __contains__(self, peer: object) -> bool:
        if not self._nets or not peer or not isinstance(peer, str):
            return False
        hit = self._seen.get(peer)
        if hit is None:
            hit = self._check(peer)
            if len(peer) <= 45:
                if len(self._seen) >= self._CACHE:
                    self._seen.clear()
                self._seen[peer] = hit
        return hit

    def _check(self, peer: str) -> bool:
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped           # a dual-stack listener's view of an IPv4 peer
        return any(addr in net for net in self._nets)


class ClientView(NamedTuple):
    """Who the visitor is, after deciding whether to believe X-Forwarded-*. Immutable;
    a NamedTuple: a frozen dataclass sets each field through `object.__setattr__`, on
    every request."""

    ip: str               # the realip walk's answer
    proto: str            # "http" | "https"
    host: str             # public host[:port] the visitor asked for, one of `hosts`
    forwarded_for: bytes  # the X-Forwarded-For value to send upstream
    refused: int = 0      # MISDIRECTED or BAD_HOST: answer that, forward nothing


def client_view(raw: Sequence[tuple[bytes, bytes]], peer: str | None, host: str,
                scheme: str, trusted: TrustedProxies, hosts: HostPolicy) -> ClientView:
    """The visitor as the proxy may believe it: X-Forwarded-For walked as nginx's realip
    does, X-Forwarded-Proto and -Host taken only from a trusted peer, and the host
    checked against `hosts` (else `refused` says why)."""
    peer = peer or ""
    believed = peer in trusted
    if believed:
        real = real_ip(peer, xff_values(raw), trusted)
        proto = (header_value(raw, b"x-forwarded-proto") or b"").split(b",")[0]
        proto_s = proto.strip().decode("latin-1").lower()
        if proto_s in ("http", "https"):
            scheme = proto_s
        xhost = (header_value(raw, b"x-forwarded-host") or b"").split(b",")[0].strip()
        if xhost:
            host = xhost.decode("latin-1")
        ip, forwarded_for = real.ip, real.forwarded_for
    else:
        ip, forwarded_for = peer, peer.encode("ascii", "replace")
    public, refused = hosts.resolve(host)
    return ClientView(ip, scheme, public, forwarded_for, refused)


def request_headers(raw: Sequence[tuple[bytes, bytes]], client: ClientView,
                    request_id: bytes = b"") -> RawHeaders:
    """The visitor's headers as sent upstream: end-to-end ones, then the proxy's own
    (with `request_id`, X-Request-ID: the visitor's own never passes as it is)."""
    named = _named_extra(raw)
    out: RawHeaders = []
    for name, value in raw:
        lname = name.lower()
        if lname in _REQUEST_DROPPED or lname in named or lname.startswith(b"proxy-"):
            continue
        if lname == b"cookie" and _INTERNAL_MARK in value:
            value = without_internal_cookies(value)
            if not value:
                continue
        out.append((name, value))
    out.append((b"X-Forwarded-For", client.forwarded_for))
    out.append((b"X-Forwarded-Proto", client.proto.encode()))
    out.append((b"X-Forwarded-Host", client.host.encode("latin-1", "replace")))
    out.append((b"Via", VIA))
    if request_id:
        out.append((b"X-Request-ID", request_id))
    return out


def via_loop(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request already carries our Via entry: an upstream that points back
    at the proxy, which would otherwise forward to itself until the pool runs out."""
    for name, value in raw:
        if len(name) == 3 and name.lower() == b"via" and VIA in value:
            for entry in value.split(b","):
                entry = entry.strip()
                if entry == VIA or entry.startswith(VIA + b" "):    # "1.1 careers-edge (x)"
                    return True
    return False


def without_internal_cookies(value: bytes) -> bytes:
    """A Cookie header without the proxy's own cookies; every other pair as it came."""
    kept = [pair for pair in value.split(b";")
            if pair.partition(b"=")[0].strip() not in _INTERNAL]
    return b";".join(kept).lstrip()


@dataclass(frozen=True, slots=True)
class LinkRoute:
    """A `[[routes]]` entry as the rewriters see it: its upstream's origin spellings,
    its upstream path and the public prefix that replaces them."""

    origins: tuple[str, ...]
    path: str
    prefix: str


class OriginRewriter:
    """Rewrites references to an upstream's origin into the public one in headers.

    `routes` are the `[[routes]]` upstreams: an absolute URL under one of them becomes
    the public origin plus its prefix. `mount` is set for a route's own responses:
    (upstream path, public prefix), so a path-absolute Location (or Refresh URL) and a
    cookie's Path move under the prefix.
    """

    def __init__(self, upstream_host: str, upstream_origins: Sequence[str],
                 routes: Sequence[LinkRoute] = (), mount: tuple[str, str] | None = None) -> None:
        # upstream_origins: e.g. ("https://ats.example", "http://ats.example")
        self.upstream_host = upstream_host.lower()
        alts = "|".join(re.escape(o) for o in sorted(upstream_origins, key=len, reverse=True))
        self._prefixes = tuple(r.prefix for r in routes)
        # One pass: a route's URL (origin case-insensitive, path exact) before the origin.
        branches = [rf"(?i:{'|'.join(re.escape(o) for o in r.origins)}){re.escape(r.path)}"
                    for r in routes]
        if branches:
            self._url = re.compile("|".join(f"({b})" for b in branches)
                                   + rf"|(?i:{alts})(?=[/?#;,\s]|$)")
        else:
            self._url = re.compile(rf"(?i)(?:{alts})(?=[/?#;,\s]|$)")
        self._mount = mount
        if mount is not None:
            self._refresh = re.compile(r"(?i)^(\s*\d*\s*;\s*url\s*=\s*['\"]?)"
                                       + re.escape(mount[0]))
        self._domain = re.compile(r"(?i)(;\s*domain\s*=\s*)\.?([^;]*)")
        self._path = re.compile(r"(?i)(;\s*path\s*=\s*)([^;]*)")

    def url(self, value: str, public_origin: str) -> str:
        mount = self._mount
        if mount is not None:               # path-absolute, from this upstream
            if value.startswith(mount[0]):
                return mount[1] + value[len(mount[0]):]
            if mount[0] in value:           # Refresh: "5; url=/embed/next"
                value = self._refresh.sub(lambda m: m.group(1) + mount[1], value)
        if not self._prefixes:
            return self._url.sub(public_origin, value)
        prefixes = self._prefixes

        def swap(m: re.Match[str]) -> str:
            i = m.lastindex
            return public_origin + prefixes[i - 1] if i else public_origin
        return self._url.sub(swap, value)

    def set_cookie(self, value: str, public_host: str) -> str:
        host_only = public_host.rsplit(":", 1)[0] if not public_host.startswith("[") else \
            public_host.split("]")[0] + "]"
        up = self.upstream_host.rsplit(":", 1)[0]

        def swap(m: re.Match[str]) -> str:
            domain = m.group(2).strip().lower()
            if domain == up or up.endswith("." + domain) or domain.endswith("." + up):
                return m.group(1) + host_only
            return m.group(0)
        value = self._domain.sub(swap, value)
        if self._mount is not None:
            value = self._path.sub(self._cookie_path, value)
        return value

    def _cookie_path(self, m: re.Match[str]) -> str:
        """A Path under the upstream path moves under the prefix; one above it (`/`)
        becomes the prefix, since only the prefix reaches this upstream."""
        path = m.group(2).strip()
        up_path, prefix = self._mount  # type: ignore[misc]
        if path.startswith(up_path):
            return m.group(1) + prefix + path[len(up_path):]
        if up_path.startswith(path) and (path.endswith("/") or up_path[len(path)] == "/"):
            return m.group(1) + prefix
        return m.group(0)


REWRITE_URL_HEADERS = frozenset({b"location", b"content-location", b"refresh"})


# Filtered responses by their upstream headers: a page's headers repeat for every
# visitor until one changes (Date, every second). Bounded by starting over when full;
# a response setting cookies (per visitor) or with unusually large headers is not kept.
_RESPONSES: dict[tuple[object, ...], tuple[tuple[str, str], ...]] = {}
_RESPONSES_MAX = 256
_KEPT_BYTES_MAX = 16 * 1024


def response_headers(raw: Sequence[tuple[bytes, bytes]], rewriter: OriginRewriter,
                     public_origin: str, public_host: str) -> list[tuple[str, str]]:
    """Upstream response headers as sent to the visitor (framing left to the server)."""
    try:
        key: tuple[object, ...] | None = (rewriter, public_origin, public_host, *raw)
        found = _RESPONSES.get(key)  # type: ignore[arg-type]
    except TypeError:               # headers not given as tuples: not kept
        key = found = None
    if found is not None:
        return list(found)
    out, keep = _response_headers(raw, rewriter, public_origin, public_host)
    if keep and key is not None:
        if len(_RESPONSES) >= _RESPONSES_MAX:
            _RESPONSES.clear()
        _RESPONSES[key] = tuple(out)
    return out


def _response_headers(raw: Sequence[tuple[bytes, bytes]], rewriter: OriginRewriter,
                      public_origin: str, public_host: str
                      ) -> tuple[list[tuple[str, str]], bool]:
    """`response_headers`, and whether the answer may be kept (no Set-Cookie)."""
    named = _named_extra(raw)
    out: list[tuple[str, str]] = []
    names = _NAME_TEXT
    size = 0
    keep = True
    for name, value in raw:
        size += len(name) + len(value)
        lname = name.lower()
        if lname in _RESPONSE_DROPPED or lname in named or lname.startswith(b"proxy-"):
            continue
        sval = value.decode("latin-1")
        if lname in REWRITE_URL_HEADERS:
            sval = rewriter.url(sval, public_origin)
        elif lname == b"set-cookie":
            sval = rewriter.set_cookie(sval, public_host)
            keep = False
        text = names.get(name)
        if text is None:
            text = name.decode("latin-1")
            if len(names) < _NAME_TEXT_MAX:
                names[name] = text
        out.append((text, sval))
    out.append(("Via", VIA_TEXT))
    return out, keep and size <= _KEPT_BYTES_MAX


def header_value(raw: Sequence[tuple[bytes, bytes]], lname: bytes) -> bytes | None:
    for name, value in raw:
        if name.lower() == lname:
            return value
    return None
