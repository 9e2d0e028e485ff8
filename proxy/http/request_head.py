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
    # The header lines joined in C; only when one of the names this layer owns may be
    # among them (rare: the pipeline never passes them) are they sorted out one by one.
    fields = b"\r\n".join(map(b": ".join, headers))
    if headers and _owned_in(fields):
        headers = [(n, v) for n, v in headers if n.lower() not in _OWNED]
        fields = b"\r\n".join(map(b": ".join, headers))
    lines = 3 + len(headers) + (1 if framing else 0)   # request line, Host, empty line
    head = b"".join((method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n", fields,
                     b"\r\n" if headers else b"", framing, b"\r\n"))
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b" " in target:
        raise ValueError("line break or space in the request target or a header")
    return head


def _owned_in(fields: bytes) -> bool:
    """Whether a line of `fields` may name Host, Content-Length or Transfer-Encoding
    (a value that seems to is sorted out too, and then refused for its line break)."""
    low = b"\n" + fields.lower()
    return b"\nhost:" in low or b"\ncontent-length:" in low or b"\ntransfer-encoding:" in low


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked request body (never call with b"": that ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
