"""Pure pieces of an upstream request: the origin, the Host value, the encoded head.

No I/O. The head is built with one `bytes.join`; the caller's headers go out exactly
as given, in order, except the three this layer owns (Host, Content-Length,
Transfer-Encoding), which it writes itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# Methods whose request defines a body: send "Content-Length: 0" when there is none.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

_OWNED = frozenset({b"host", b"content-length", b"transfer-encoding"})
_OWNED_LENGTHS = frozenset(len(n) for n in _OWNED)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_method_cache: dict[str, bytes] = {}

CHUNKED = b"Transfer-Encoding: chunked\r\n"
NO_BODY_FOR_POST = b"Content-Length: 0\r\n"


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str           # "http" | "https"
    host: str             # without brackets for IPv6
    port: int
    host_header: bytes    # "host" or "host:port" when the port is not the default


def parse_origin(origin: str) -> Origin:
    """'https://acme.example' -> Origin('https', 'acme.example', 443, b'acme.example')."""
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"upstream origin must be http:// or https://, got {origin!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"upstream origin has no host: {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"upstream origin must be scheme://host[:port] only, got {origin!r}")
    port = parts.port or DEFAULT_PORTS[scheme]
    name = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        name = f"{name}:{port}"
    return Origin(scheme, host, port, name.encode("idna" if not name.isascii() else "ascii"))


def method_bytes(method: str) -> bytes:
    """The method as bytes, checked to be an HTTP token (cached: a handful exist)."""
    cached = _method_cache.get(method)
    if cached is None:
        if not _TOKEN.fullmatch(method):
            raise ValueError(f"invalid HTTP method {method!r}")
        cached = method.encode("ascii")
        if len(_method_cache) < 64:
            _method_cache[method] = cached
    return cached


def content_length(n: int) -> bytes:
    return b"Content-Length: %d\r\n" % n


def encode_head(method: bytes, target: bytes, host: bytes,
                headers: list[tuple[bytes, bytes]], framing: bytes) -> bytes:
    """`METHOD target HTTP/1.1`, Host, the caller's headers, the framing line, CRLF.

    Raises ValueError when a target or header would smuggle a line break: the number
    of CR and LF in the result must be exactly one per line.
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    lines = 3                               # request line, Host, the empty line
    for name, value in headers:
        if len(name) in _OWNED_LENGTHS and name.lower() in _OWNED:
            continue
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if framing:
        parts.append(framing)
        lines += 1
    parts.append(b"\r\n")
    head = b"".join(parts)
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b" " in target:
        raise ValueError("line break or space in the request target or a header")
    return head


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked request body (never call with b"": that ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
