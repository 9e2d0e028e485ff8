"""The proxy's cookies: their names, reading a Cookie header, writing Set-Cookie,
and the signed attribution cookie's codec.

Attribution cookie format (compact, URL-safe, no quoting needed):
    base64url(orjson({"v": 1, "l": linksClickedId, "c": {param: [value, seen_ms]}}))
    + "." + base64url(HMAC-SHA256(secret, "ce_attr." + payload)[:16])
The linksClickedId is inside the signed payload: the cookie belongs to one visitor,
and one copied next to another visitor's id is refused. Anything that does not
verify (tampered, truncated, another key, oversize, wrong shape) decodes to None.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from proxy.attribution.clickids import ClickId, valid_value

VISITOR_COOKIE = "linksClickedId"
ATTR_COOKIE = "ce_attr"
FBC_COOKIE = "_fbc"
FBP_COOKIE = "_fbp"
TTP_COOKIE = "_ttp"                # set by the TikTok pixel; read, never written
CARRY_COOKIE = "ce_events"         # events carried to the next page (proxy/handoff.py)
FIRED_COOKIE = "ce_fired"          # the page script's tracked event ids (proxy/page_script.py)
PREVIEW_COOKIE = "ce_preview"      # a test visitor (proxy/attribution/preview.py)
# Only the proxy and its page script read these: they never reach the upstream. Not
# linksClickedId (an ATS may keep it with an application), nor _fbc/_fbp (the site's
# own tags set and read them).
INTERNAL_COOKIES = frozenset({ATTR_COOKIE, CARRY_COOKIE, FIRED_COOKIE, PREVIEW_COOKIE})

MAX_AGE_CAP = 400 * 86400          # Chrome caps every cookie at 400 days
MAX_COOKIE_VALUE = 4000            # browsers drop a cookie past ~4096 bytes with its name
MAC_BYTES = 16
_VERIFIED_CACHE = 2048
_MAC_LABEL = ATTR_COOKIE.encode() + b"."
_FORMAT_VERSION = 1

# A visitor id we accept from a cookie: what we mint (32 hex) and what others
# commonly mint (UUIDs, base64url tokens); nothing that needs quoting.
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def parse_cookie_header(header: str | None, wanted: frozenset[str]) -> dict[str, str]:
    """The first value of each wanted cookie; malformed pairs are skipped."""
    out: dict[str, str] = {}
    if not header:
        return out
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        if not eq:
            continue
        name = name.strip()
        if name in wanted and name not in out:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out[name] = value
    return out


def max_age_for(days: float) -> int:
    return max(0, min(int(days * 86400), MAX_AGE_CAP))


def set_cookie(name: str, value: str, *, max_age: int, secure: bool, http_only: bool,
               domain: str | None = None) -> str:
    """One Set-Cookie header value; callers pass only values built from safe charsets."""
    return f"{name}={value}; {_attributes(max_age, domain, secure, http_only)}"


def cookie_attributes(max_age: int, secure: bool, *, http_only: bool,
                      domain: str | None = None) -> str:
    """What `set_cookie` puts after the value, from its "; " on: a caller that sets
    the same cookie on every response keeps this and appends it to `name=value`."""
    return "; " + _attributes(max_age, domain, secure, http_only)


@functools.lru_cache(maxsize=64)
def _attributes(max_age: int, domain: str | None, secure: bool, http_only: bool) -> str:
    """The attributes after the value: the same few combinations on every response."""
    parts = [f"Max-Age={max_age}", "Path=/"]
    if domain:
        parts.append(f"Domain={domain}")
    parts.append("SameSite=Lax")
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    return "; ".join(parts)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64d(text: bytes) -> bytes:
    if b"+" in text or b"/" in text:
        raise ValueError("not base64url")
    return binascii.a2b_base64(text.translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4),
                               strict_mode=True)


class Opened(NamedTuple):
    """A verified attribution cookie; `stale` when a previous secret signed it."""

    visitor_id: str
    click_ids: dict[str, ClickId]
    stale: bool


class AttrCodec:
    """Signs the attribution cookie with `secret`; verifies it with `secret` or any
    of `previous` (`[proxy] previous_secrets`), so rotating the key keeps visitors'
    attribution. A cookie a previous secret signed is `stale`: the caller re-signs it.

    A repeat visitor sends the same cookie on every request, so verified values
    are remembered (bounded); only a value that verified is ever remembered.
    """

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        if not secret or not all(previous):
            raise ValueError("the attribution cookie needs non-empty secrets")
        self._secret = bytes(secret)
        self._previous = tuple(bytes(p) for p in previous if p != secret)
        self._verified: dict[str, Opened] = {}

    def _sign(self, payload: bytes, secret: bytes | None = None) -> bytes:
        return hmac.digest(secret or self._secret, _MAC_LABEL + payload, "sha256")[:MAC_BYTES]

    def encode(self, visitor_id: str, click_ids: dict[str, ClickId]) -> str:
        """The cookie value; the oldest click ids are dropped if it would not fit."""
        entries = sorted(click_ids.items(), key=lambda kv: kv[1].seen_at, reverse=True)
        while True:
            body: dict[str, Any] = {
                "v": _FORMAT_VERSION, "l": visitor_id,
                "c": {p: [c.value, int(c.seen_at * 1000)] for p, c in entries},
            }
            payload = _b64e(orjson.dumps(body)).encode("ascii")
            value = payload.decode("ascii") + "." + _b64e(self._sign(payload))
            if len(value) <= MAX_COOKIE_VALUE or not entries:
                return value
            entries.pop()

    def decode(self, value: str) -> tuple[str, dict[str, ClickId]] | None:
        """(linksClickedId, click ids) from a verified cookie, else None."""
        opened = self.open(value)
        return None if opened is None else (opened.visitor_id, opened.click_ids)

    def open(self, value: str) -> Opened | None:
        """The verified cookie, else None."""
        hit = self._verified.get(value)
        if hit is not None:
            return hit
        if len(value) > MAX_COOKIE_VALUE or value.count(".") != 1:
            return None
        try:
            payload, _, mac_text = value.encode("ascii").partition(b".")
        except UnicodeEncodeError:
            return None
        # Compare the text form: one canonical encoding of the MAC, no malleable tail bits.
        stale = False
        if not hmac.compare_digest(mac_text, _b64e(self._sign(payload)).encode("ascii")):
            if not any(hmac.compare_digest(mac_text, _b64e(self._sign(payload, old)).encode())
                       for old in self._previous):
                return None
            stale = True
        try:
            body = orjson.loads(_b64d(payload))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            return None
        decoded = _from_body(body)
        if decoded is None:
            return None
        opened = Opened(*decoded, stale)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[value] = opened
        return opened


def _from_body(body: Any) -> tuple[str, dict[str, ClickId]] | None:
    # Signed by us, but shapes are still checked: a key change or an older
    # format must never crash the request path.
    if not isinstance(body, dict) or body.get("v") != _FORMAT_VERSION:
        return None
    visitor_id, raw = body.get("l"), body.get("c")
    if not isinstance(visitor_id, str) or not VISITOR_ID.fullmatch(visitor_id):
        return None
    if not isinstance(raw, dict):
        return None
    click_ids: dict[str, ClickId] = {}
    for param, entry in raw.items():
        if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and type(entry[1]) is int and valid_value(param, entry[0])):
            click_ids[param] = ClickId(entry[0], entry[1] / 1000)
    return visitor_id, click_ids


def sign(secret: bytes, label: bytes, payload: bytes) -> str:
    """The MAC of `payload` under `label` (one label per cookie), as cookies carry it."""
    return _b64e(hmac.digest(secret, label + payload, "sha256")[:MAC_BYTES])
