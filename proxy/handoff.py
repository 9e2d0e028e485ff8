"""Events fired on a response that is no tracked page: how they reach the browser pixel.

A rule can fire on a response that the browser never shows as a page with our
script: a redirect, a fetch or XMLHttpRequest answered with JSON, an HTML page
outside every pixel's `paths`. The browser pixel must still track the event, with
the server-side event's id (Meta deduplicates the pair only then), and only once.
Two ways carry it, one id:

- the `X-Careers-Edge-Events` response header, on every such response but a
  redirect: JSON items exactly as the page's script tracks them (event name, id,
  the pixel call's data — never more). The script injected into our pages
  (`page_script`) observes every same-origin fetch and XMLHttpRequest and tracks
  what the header names as soon as the response's headers arrive;
- the carry cookie `ce_events` (HttpOnly, a few minutes), for a browser whose
  script did not see that response (JavaScript off and a form posted straight to
  a JSON endpoint, a request the site made with a `fetch` it saved before our
  script ran, a redirect): the next HTML page with pixels tracks what it carries
  and clears it.

Exactly once per event id: the script, having tracked events from a header,
lists their ids in the cookie `ce_fired` (written by the script, Path=/, as short
lived as the carry). The next request drops carried events whose ids it lists
(`Incoming.pending`), so neither a page nor a later header tracks them again, and
the page that spends the carry clears both cookies. Within one page the script
also ignores an id it has tracked already. Cookies rather than Web Storage: they
are shared by every tab, and the server sees them. Both cookies concern only the
visitor's own browser: a forged one can make their own pixel skip or repeat an
event, nothing more; their values are bounded, checked and escaped, never trusted
further.

`Incoming.read` takes what the request brought; `plan_handoff` (pure) says, for
one response, which cookies to set and which events go in the header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

# CARRY_COOKIE is re-exported: the carry's name is read where its rules are.
from proxy.attribution.cookies import CARRY_COOKIE as CARRY_COOKIE
from proxy.attribution.cookies import FIRED_COOKIE, parse_cookie_header, set_cookie
from proxy.page_script import CARRY_SECONDS, FIRED_MAX
from proxy.pixels import BrowserEvent, browser_events

SEC_FETCH_DEST = "Sec-Fetch-Dest"
CARRY_MAX = 8                 # events one cookie or header carries at most
CARRY_FIELD_MAX = 200         # characters of a name, id or data value
CARRY_KEY_MAX = 40
CARRY_COOKIE_MAX = 4096
HEADER_MAX = 4096             # bytes of the events header
FIRED_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PLAIN = re.compile(r"[ -~]*")          # printable ASCII: a header value as it is
_COOKIES = frozenset({CARRY_COOKIE, FIRED_COOKIE})


def _short(v: object) -> str | None:
    return v[:CARRY_FIELD_MAX] if isinstance(v, str) else None


def bounded(events: Sequence[BrowserEvent]) -> list[BrowserEvent]:
    """At most CARRY_MAX events, each field cut to CARRY_FIELD_MAX characters."""
    return [BrowserEvent(e.name[:CARRY_FIELD_MAX], e.event_id[:CARRY_FIELD_MAX],
                         {k[:CARRY_KEY_MAX]: v[:CARRY_FIELD_MAX] for k, v in e.data.items()})
            for e in events[:CARRY_MAX]]


def carry_cookie(events: Sequence[BrowserEvent], secure: bool) -> str:
    """Set-Cookie carrying browser events to the next page ([] clears it)."""
    if not events:
        return set_cookie(CARRY_COOKIE, "", max_age=0, secure=secure, http_only=True)
    payload = [[e.name, e.event_id, dict(e.data)] for e in bounded(events)]
    value = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
    return set_cookie(CARRY_COOKIE, value, max_age=CARRY_SECONDS, secure=secure,
                      http_only=True)


def clear_fired_cookie(secure: bool) -> str:
    # Not HttpOnly: the same attributes as the script writes it with.
    return set_cookie(FIRED_COOKIE, "", max_age=0, secure=secure, http_only=False)


def read_carry(value: str | None) -> list[BrowserEvent]:
    """Events from the carry cookie; anything malformed is dropped, never trusted further."""
    if not value or len(value) > CARRY_COOKIE_MAX:
        return []
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        return []
    out: list[BrowserEvent] = []
    if not isinstance(raw, list):
        return out
    for item in raw[:CARRY_MAX]:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], dict)):
            continue
        name, event_id = _short(item[0]), _short(item[1])
        if not name or not event_id:
            continue
        data = {k[:CARRY_KEY_MAX]: s for k, v in item[2].items()
                if (s := _short(v)) is not None}
        out.append(BrowserEvent(name, event_id, data))
    return out


def read_fired(value: str | None) -> frozenset[str]:
    """The ids the script lists as tracked already (`a.b.c`); others are ignored."""
    if not value:
        return frozenset()
    return frozenset(i for i in value.split(".")[:FIRED_MAX] if FIRED_ID.fullmatch(i))


def from_script(headers: Mapping[str, str]) -> bool:
    """A fetch or XMLHttpRequest, as browsers tell it (`Sec-Fetch-Dest: empty`)."""
    return headers.get(SEC_FETCH_DEST) == "empty"


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the request brought: carried events not yet tracked, and which cookies."""

    pending: tuple[BrowserEvent, ...] = ()
    had_carry: bool = False
    had_fired: bool = False

    @classmethod
    def read(cls, cookie_header: str | None) -> Incoming:
        # Most requests carry nothing: a substring test spares parsing the header.
        if not cookie_header or CARRY_COOKIE not in cookie_header:
            return NOTHING
        cookies = parse_cookie_header(cookie_header, _COOKIES)
        if not cookies.get(CARRY_COOKIE):
            return NOTHING
        fired = read_fired(cookies.get(FIRED_COOKIE))
        return cls(tuple(e for e in read_carry(cookies[CARRY_COOKIE])
                         if e.event_id not in fired),
                   had_carry=True, had_fired=FIRED_COOKIE in cookies)

    def dropped(self) -> Incoming:
        """The same cookies, their events not to be tracked (no consent)."""
        return Incoming((), self.had_carry, self.had_fired)


NOTHING = Incoming()


@dataclass(frozen=True, slots=True)
class Handoff:
    set_cookies: tuple[str, ...] = ()
    header: tuple[BrowserEvent, ...] = ()      # events for the X-Careers-Edge-Events header


def plan_handoff(incoming: Incoming, fired: Sequence[BrowserEvent], *, status: int,
                 spends_carry: bool, script_request: bool, secure: bool) -> Handoff:
    """Cookies and header for one response.

    `fired`: browser events this response fired (before its headers went out);
    `spends_carry`: the response is a page with our pixels, which tracks
    `incoming.pending` and `fired` itself, or the visitor's consent does not let
    us keep the carry; `script_request`: the request came from a page's script
    (`Sec-Fetch-Dest: empty`), which reads the header.
    """
    if spends_carry:
        cookies = []
        if incoming.had_carry:
            cookies.append(carry_cookie([], secure))
        if incoming.had_fired:
            cookies.append(clear_fired_cookie(secure))
        return Handoff(tuple(cookies))
    events = _unique([*incoming.pending, *fired])
    if not fired:
        # Nothing new: only a script's request, which can track it now, gets the carry.
        if events and script_request and not 300 <= status < 400:
            return Handoff(header=tuple(bounded(events)))
        return NO_HANDOFF
    cookie = (carry_cookie(events, secure),)
    if 300 <= status < 400:
        return Handoff(cookie)     # a redirect's headers never reach a script
    return Handoff(cookie, tuple(bounded(events)))


NO_HANDOFF = Handoff()


def _unique(events: Sequence[BrowserEvent]) -> list[BrowserEvent]:
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def events_header(events: Sequence[BrowserEvent]) -> str | None:
    """The events header: the items as the page's script tracks them, in compact
    ASCII JSON (a header is latin-1 on the wire, and the script reads it as such);
    trailing items are left to the carry cookie when it would grow past HEADER_MAX."""
    items = browser_events(events)
    while items:
        text = orjson.dumps(items).decode()
        if not _PLAIN.fullmatch(text):
            text = "".join(c if " " <= c < "\x7f" else _escape(c) for c in text)
        if len(text) <= HEADER_MAX:
            return text
        items.pop()
    return None


def _escape(c: str) -> str:
    n = ord(c)
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
