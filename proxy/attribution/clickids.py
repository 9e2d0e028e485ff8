"""Click ids in landing URLs: which values are valid, and the query without them.

A click id is only ever taken from a configured param and only when its value,
after percent-decoding, is plain URL-safe text (`tlr_sid` must be a UUID). Anything
else is reported as rejected and otherwise ignored, so a hostile value can never
reach a header, a cookie or a page. Stripping works on the raw query string
segment by segment: the segments kept are returned byte-exact, in their order,
with their `&` separators (empty segments included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

MAX_VALUE_LEN = 512
# 4 kB of query is far beyond any landing URL's click id; longer segments are not decoded.
MAX_SEGMENT_LEN = MAX_VALUE_LEN * 3 + 64

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_URL_SAFE = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_VALUE_LEN}}}")
# Params whose value has a stricter shape than "URL-safe text".
_SHAPES: dict[str, re.Pattern[str]] = {"tlr_sid": _UUID}


@dataclass(slots=True, frozen=True)
class ClickId:
    value: str
    seen_at: float      # Unix seconds


def valid_value(param: str, value: str) -> bool:
    """True when `value` (already percent-decoded) is acceptable for `param`."""
    return _SHAPES.get(param, _URL_SAFE).fullmatch(value) is not None


@dataclass(slots=True)
class QueryScan:
    found: dict[str, str]          # param -> first valid value
    rejected: list[str]            # params present with no valid value
    upstream_query: str | None     # raw query minus captured params; None = unchanged


def _name(segment: str) -> str:
    name = segment.partition("=")[0]
    if "%" in name or "+" in name:
        name = unquote_plus(name)
    return name


def scan_query(raw_query: str, params: frozenset[str], strip: bool) -> QueryScan:
    """Find configured click ids in `raw_query`; optionally drop the captured ones."""
    found: dict[str, str] = {}
    present: list[str] = []
    if not raw_query:
        return QueryScan(found, [], None)
    segments = raw_query.split("&")
    for segment in segments:
        if not segment:
            continue
        name = _name(segment)
        if name not in params:
            continue
        if name not in present:
            present.append(name)
        if name in found or len(segment) > MAX_SEGMENT_LEN:
            continue
        raw_value = segment.partition("=")[2]
        # Percent-decode strictly: "+" and invalid UTF-8 turn into characters the
        # charset refuses, so such values are rejected rather than guessed at.
        value = unquote(raw_value, errors="replace") if "%" in raw_value else raw_value
        if valid_value(name, value):
            found[name] = value
    rejected = [p for p in present if p not in found]
    upstream: str | None = None
    if strip and found:
        kept = [s for s in segments if not s or _name(s) not in found]
        upstream = "&".join(kept)
    return QueryScan(found, rejected, upstream)
