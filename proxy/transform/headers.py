"""Which responses the HTML transform may touch, and their headers once it has.

Headers are raw, ordered `(name, value)` pairs, either all `str` or all `bytes`
(latin-1, as on the wire); each function returns the same kind it was given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import AnyStr, Final

from proxy.transform.codecs import normalize

CONTENT_TYPE: Final = "content-type"
CONTENT_ENCODING: Final = "content-encoding"
CONTENT_RANGE: Final = "content-range"
CONTENT_DISPOSITION: Final = "content-disposition"
CACHE_CONTROL: Final = "cache-control"
ETAG: Final = "etag"
VARY: Final = "vary"
# The body changes: its length, ranges and digests no longer hold.
DROPPED: Final = frozenset({
    "content-length", "accept-ranges", "content-md5", "digest", "content-digest",
    "repr-digest",
})
# Charsets in which `<`, `/`, letters and quotes are not single ASCII bytes.
NOT_ASCII_COMPATIBLE: Final = re.compile(
    r"^(utf-?16|utf-?32|ucs-?2|ucs-?4|utf-?7|iso-?2022|hz-gb|cp0?37|ibm0?37|cp500|ebcdic)",
    re.IGNORECASE)
# UTF-16 labels (WHATWG: "utf-16" means little-endian): streamed as UTF-8 and back.
_UTF16_LABELS: Final = {"utf-16": "utf-16-le", "utf16": "utf-16-le", "utf-16le": "utf-16-le",
                        "utf16le": "utf-16-le", "utf-16be": "utf-16-be", "utf16be": "utf-16-be"}
_ENTITY_TAG: Final = re.compile(r'(W/)?("[^"]*")')


def _text(headers: Sequence[tuple[AnyStr, AnyStr]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) if isinstance(k, bytes)
            and isinstance(v, bytes) else (str(k), str(v)) for k, v in headers]


def _like(template: Sequence[tuple[AnyStr, AnyStr]],
          headers: list[tuple[str, str]]) -> list[tuple[AnyStr, AnyStr]]:
    if template and isinstance(template[0][0], bytes):
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]  # type: ignore[misc]
    return headers  # type: ignore[return-value]


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


_CHECKED: Final = (CONTENT_TYPE, CACHE_CONTROL, CONTENT_RANGE, CONTENT_DISPOSITION,
                   CONTENT_ENCODING)
_CHECKED_BYTES: Final = {n.encode(): n for n in _CHECKED}


def _checked(headers: Sequence[tuple[AnyStr, AnyStr]]) -> dict[str, str]:
    """The values of the headers `should_transform` reads, in one pass (repeats
    joined with ", ", as `_get` does)."""
    found: dict[str, list[str]] = {}
    for k, v in headers:
        if isinstance(k, bytes) and isinstance(v, bytes):
            name = _CHECKED_BYTES.get(k.lower())
            if name is not None:
                found.setdefault(name, []).append(v.decode("latin-1"))
        elif (lk := str(k).lower()) in _CHECKED:
            found.setdefault(lk, []).append(str(v))
    return {k: ", ".join(v) for k, v in found.items()}


def should_transform(method: str, status: int,
                     headers: Sequence[tuple[AnyStr, AnyStr]]) -> bool:
    """Only a full (200) `text/html` response to a non-HEAD request, in an
    ASCII-compatible charset, coded in something the codecs undo, with no
    `Cache-Control: no-transform`, no range and not a download."""
    if status != 200 or method.upper() == "HEAD":
        return False
    h = _checked(headers)
    ctype = h.get(CONTENT_TYPE)
    if ctype is None:
        return False
    media, *params = ctype.split(";")
    if media.strip().lower() != "text/html":
        return False
    for p in params:
        key, _, val = p.partition("=")
        charset = val.strip(" \"'")
        if key.strip().lower() == "charset" and NOT_ASCII_COMPATIBLE.match(charset) \
                and charset.lower() not in _UTF16_LABELS:
            return False
    if CACHE_CONTROL in h and any(t.split("=")[0].strip() == "no-transform"
                                  for t in _tokens(h[CACHE_CONTROL])):
        return False
    if CONTENT_RANGE in h:
        return False
    if h.get(CONTENT_DISPOSITION, "").strip().lower().startswith("attachment"):
        return False
    return normalize(h.get(CONTENT_ENCODING)) is not None


def declared_utf16(headers: Sequence[tuple[AnyStr, AnyStr]]) -> str | None:
    """"utf-16-le" or "utf-16-be" when the Content-Type's charset is UTF-16, else None."""
    ctype = _checked(headers).get(CONTENT_TYPE, "")
    for p in ctype.split(";")[1:]:
        key, _, val = p.partition("=")
        if key.strip().lower() == "charset":
            return _UTF16_LABELS.get(val.strip(" \"'").lower())
    return None


def weaken_etag(value: str) -> str:
    """`"x"` -> `W/"x"`; weak tags unchanged. For the 200 the proxy modified and
    for the 304s that revalidate it (a 304 must repeat the 200's ETag)."""
    v = value.strip()
    return v if v.startswith("W/") or not v else "W/" + v


def transformed_headers(
        headers: Sequence[tuple[AnyStr, AnyStr]]) -> list[tuple[AnyStr, AnyStr]]:
    """The response headers for a transformed body: Content-Length, Accept-Ranges
    and digests dropped, ETag weakened, Content-Encoding kept. A compressed body
    is re-encoded by the proxy, so `Accept-Encoding` is added to Vary then."""
    h = _text(headers)
    reencoded = normalize(_get(h, CONTENT_ENCODING)) not in (None, "identity")
    out: list[tuple[str, str]] = []
    vary_seen = False
    for k, v in h:
        lk = k.lower()
        if lk in DROPPED:
            continue
        if lk == ETAG:
            v = weaken_etag(v)
        elif lk == VARY:
            vary_seen = True
            toks = _tokens(v)
            if reencoded and "*" not in toks and "accept-encoding" not in toks:
                v = f"{v}, Accept-Encoding" if v.strip() else "Accept-Encoding"
        out.append((k, v))
    if reencoded and not vary_seen:
        out.append(("Vary", "Accept-Encoding"))
    return _like(headers, out)


def unweaken_if_none_match(value: str) -> str:
    """Strip `W/` from every entity-tag of an If-None-Match going upstream.

    The proxy weakens the strong ETags of the pages it modifies, and the
    upstream would not recognise `W/"x"` as its `"x"` if it compared strongly.
    Stripping all of them (not only the ones the proxy weakened, which it cannot
    tell apart) is safe: If-None-Match uses the weak comparison (RFC 9110
    §13.1.2), for which `W/"x"` and `"x"` are the same tag. If-Match is left alone.
    """
    return _ENTITY_TAG.sub(lambda m: m.group(2), value)
