"""The attribution stage of the request path: request values in, a `Visit` out.

Pure (no I/O) and cheap; it runs on every proxied request. Decisions:
- `linksClickedId` is minted (128 random bits, 32 hex) for a visitor without a
  well-formed one, and only then set. It is not HttpOnly: it is a first-party,
  functional id that pages and pixels may read. Without consent it is still
  minted; only Meta's `_fbc`/`_fbp` wait for consent.
- The signed attribution cookie (`ce_attr`, HttpOnly) is bound to the visitor's
  id. One whose id differs from the `linksClickedId` cookie is refused
  (`cookie_rejected`); a valid one seen without any `linksClickedId` gives the
  visitor its id back (the id cookie is re-set).
- Click ids are captured into it with or without consent: the cookie is
  first-party and HttpOnly, and no network sees a click id unless consent holds
  when a conversion is sent. A click id older than `cookie_days` is dropped.
  Reloading a landing URL keeps the first capture's time; a new value for a param
  replaces the old one.
- A refused attribution cookie is deleted (Max-Age=0) unless replaced. One signed
  with a previous secret (`previous_secrets`) is trusted and re-signed with `secret`.
- With `[consent] tcf` and a TC string without purpose-1 consent (or one that cannot
  be read), no cookie of ours but `linksClickedId` is set or read: the attribution
  cookie is neither read nor written (one already held is expired), so click ids of
  this URL serve this request only. See `consent.py` for every consent decision.
- `_fbc`/`_fbp` need consent. The fbclid for `_fbc` comes from the URL, else the
  Referer's query (as Meta's builder does), else, when `_fbc` is missing, from the
  fbclid held in the attribution cookie (consent given after landing).
- A valid preview cookie (`preview.py`, set by the operators' preview link) makes
  the visit a test visit (`Visit.preview`): its events are test events.
- The TikTok pixel's `_ttp` cookie is read (never set) when it is plain URL-safe
  text, for the TikTok sink's `user.ttp`; not without purpose-1 consent (`storage`).
- With `strip`, every occurrence of a captured param is removed from the query
  sent upstream; `upstream_query == ""` means "no query at all".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from proxy.attribution.clickids import ClickId, scan_query
from proxy.attribution.consent import Consent, ConsentState
from proxy.attribution.cookies import (
    ATTR_COOKIE,
    VISITOR_COOKIE,
    AttrCodec,
    cookie_attributes,
    max_age_for,
    set_cookie,
)
from proxy.attribution.fbparams import FbParams
from proxy.attribution.jar import JarReader
from proxy.attribution.preview import PreviewCodec
from proxy.config.model import AttributionSection, ConsentSection
from proxy.random_ids import visitor_id as new_visitor_id

__all__ = ["Attribution", "ClickId", "Visit"]

_MAX_REFERER = 8192
_FBCLID = frozenset({"fbclid"})
_NOTHING_FOUND: dict[str, str] = {}     # never written to: read-only stand-in


@dataclass(slots=True)
class Visit:
    # Built positionally on the request path (`on_request`): the order of the fields
    # is part of that call.
    links_clicked_id: str
    new_visitor: bool
    click_ids: dict[str, ClickId]
    captured: list[str]          # valid click ids in this URL
    rejected: list[str]
    cookie_rejected: bool
    consent: bool
    fbc: str | None
    fbp: str | None
    set_cookies: list[str]
    upstream_query: str | None
    new_clicks: list[str] = field(default_factory=list)   # captured ones not already held
    ttp: str | None = None       # the TikTok pixel's _ttp cookie, when well-formed
    consent_state: ConsentState = field(default_factory=lambda: ConsentState(True))
    preview: bool = False        # a valid `ce_preview` cookie: a test visitor


def _referer_fbclid(referer: str | None) -> str | None:
    if not referer or len(referer) > _MAX_REFERER or "fbclid" not in referer:
        return None
    query = referer.partition("#")[0].partition("?")[2]
    return scan_query(query, _FBCLID, False).found.get("fbclid")


class Attribution:
    def __init__(self, attribution: AttributionSection, consent: ConsentSection,
                 secret: bytes, previous_secrets: tuple[bytes, ...] = ()) -> None:
        self._params = frozenset(attribution.params)
        self._strip = attribution.strip
        self._max_age = max_age_for(attribution.cookie_days)
        self._codec = AttrCodec(secret, previous_secrets)
        self._consent = Consent(consent)
        self._fb = FbParams()
        self._preview = PreviewCodec(secret, previous_secrets)
        self._jars = JarReader(consent.cookie, consent.tcf)
        # What every visitor without a consent cookie or TC string gets, by Sec-GPC.
        self._unasked = (self._consent.decide(None, False, None),
                         self._consent.decide(None, True, None))
        # The attributes after each cookie's value, by `secure`.
        self._visitor_attributes = tuple(
            cookie_attributes(self._max_age, secure, http_only=False) for secure in (False, True))
        self._attr_attributes = tuple(
            cookie_attributes(self._max_age, secure, http_only=True) for secure in (False, True))

    @property
    def preview(self) -> PreviewCodec:
        """The preview cookie's codec (`endpoints/preview.py` sets the cookie)."""
        return self._preview

    def on_request(self, *, raw_query: str, cookie_header: str | None, host: str, secure: bool,
                   gpc: bool, referer: str | None = None, now: float | None = None) -> Visit:
        # Every step is skipped when its input is absent (no Cookie header, no query,
        # no fbclid): most requests lack some of them, and this runs on all of them.
        if not cookie_header and not raw_query:
            return self._stranger(host, secure, gpc, referer)
        now = time.time() if now is None else now
        jar = self._jars.read(cookie_header)
        set_cookies: list[str] = []
        if jar.consent is None and jar.tc_string is None:
            state = self._unasked[gpc]
        else:
            state = self._consent.decide(jar.consent, gpc, jar.tc_string)
        storage = state.storage

        visitor_id = jar.visitor_id
        held: dict[str, ClickId] = {}
        cookie_rejected = False
        set_visitor = False
        resign = False
        attr_raw = jar.attr
        if attr_raw and not storage:
            set_cookies.append(set_cookie(ATTR_COOKIE, "", max_age=0, secure=secure,
                                          http_only=True))
        elif attr_raw:
            opened = self._codec.open(attr_raw)
            if opened is None or (visitor_id is not None and opened.visitor_id != visitor_id):
                cookie_rejected = True
            else:
                if visitor_id is None:
                    visitor_id, set_visitor = opened.visitor_id, True
                oldest = now - self._max_age
                held = {p: c for p, c in opened.click_ids.items()
                        if p in self._params and c.seen_at >= oldest}
                resign = opened.stale
        new_visitor = visitor_id is None
        if visitor_id is None:
            visitor_id, set_visitor = new_visitor_id(), True
        if set_visitor:
            set_cookies.append(f"{VISITOR_COOKIE}={visitor_id}{self._visitor_attributes[secure]}")

        click_ids = held
        new_clicks: list[str] = []
        if raw_query:
            scan = scan_query(raw_query, self._params, self._strip)
            found, rejected, upstream_query = scan.found, scan.rejected, scan.upstream_query
            for param, value in found.items():
                old = click_ids.get(param)
                if old is None or old.value != value:
                    # seen_at in ms, as the cookie keeps it
                    click_ids[param] = ClickId(value, int(now * 1000) / 1000)
                    new_clicks.append(param)
        else:
            found, rejected, upstream_query = _NOTHING_FOUND, [], None
        if (new_clicks or resign) and storage:
            set_cookies.append(f"{ATTR_COOKIE}={self._codec.encode(visitor_id, click_ids)}"
                               f"{self._attr_attributes[secure]}")
        elif cookie_rejected:
            set_cookies.append(set_cookie(ATTR_COOKIE, "", max_age=0, secure=secure,
                                          http_only=True))

        consent = state.marketing
        fbc = fbp = None
        if consent:
            fbclid = found.get("fbclid") or (_referer_fbclid(referer) if referer else None)
            if fbclid is None and not jar.fbc_sent and "fbclid" in click_ids:
                fbclid = click_ids["fbclid"].value
            if fbclid is None and jar.fbp is not None:
                fbc, fbp = jar.fbc, jar.fbp         # nothing for Meta's builder to change
            else:
                fbc, fbp, fb_cookies = self._fb.build(host, fbclid, jar.fbc, jar.fbp, secure)
                set_cookies += fb_cookies

        preview = jar.preview
        # Positional: Visit's fields in their order (keywords cost twice as much here).
        return Visit(visitor_id, new_visitor, click_ids, list(found), rejected, cookie_rejected,
                     consent, fbc, fbp, set_cookies, upstream_query, new_clicks,
                     jar.ttp if storage else None, state,
                     preview is not None and self._preview.valid(preview, now))

    def _stranger(self, host: str, secure: bool, gpc: bool, referer: str | None) -> Visit:
        """`on_request` without a Cookie header or a query: a new visitor with nothing
        held and nothing captured (the Referer may still carry an fbclid)."""
        state = self._unasked[gpc]
        visitor_id = new_visitor_id()
        set_cookies = [f"{VISITOR_COOKIE}={visitor_id}{self._visitor_attributes[secure]}"]
        fbc = fbp = None
        consent = state.marketing
        if consent:
            fbclid = _referer_fbclid(referer) if referer else None
            fbc, fbp, fb_cookies = self._fb.build(host, fbclid, None, None, secure)
            set_cookies += fb_cookies
        return Visit(visitor_id, True, {}, [], [], False, consent, fbc, fbp, set_cookies, None,
                     [], None, state, False)
