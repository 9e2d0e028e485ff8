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

import secrets
import time
from dataclasses import dataclass, field

from proxy.attribution.clickids import ClickId, scan_query, valid_value
from proxy.attribution.consent import TCF_COOKIE, Consent, ConsentState
from proxy.attribution.cookies import (
    ATTR_COOKIE,
    FBC_COOKIE,
    FBP_COOKIE,
    TTP_COOKIE,
    VISITOR_COOKIE,
    VISITOR_ID,
    AttrCodec,
    max_age_for,
    parse_cookie_header,
    set_cookie,
)
from proxy.attribution.fbparams import FB_MAX_AGE, FbParams
from proxy.attribution.preview import PREVIEW_COOKIE, PreviewCodec
from proxy.config.model import AttributionSection, ConsentSection

__all__ = ["Attribution", "ClickId", "Visit"]

_MAX_REFERER = 8192
_FBCLID = frozenset({"fbclid"})


@dataclass(slots=True)
class Visit:
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


def _ttp(value: str | None) -> str | None:
    """`_ttp` as TikTok's pixel writes it; anything else is not passed on."""
    return value if value and valid_value(TTP_COOKIE, value) else None


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
        self._wanted = frozenset(
            {VISITOR_COOKIE, ATTR_COOKIE, FBC_COOKIE, FBP_COOKIE, TTP_COOKIE, PREVIEW_COOKIE,
             consent.cookie}
            | ({TCF_COOKIE} if consent.tcf else set()))

    @property
    def preview(self) -> PreviewCodec:
        """The preview cookie's codec (`endpoints/preview.py` sets the cookie)."""
        return self._preview

    def on_request(self, *, raw_query: str, cookie_header: str | None, host: str, secure: bool,
                   gpc: bool, referer: str | None = None, now: float | None = None) -> Visit:
        now = time.time() if now is None else now
        cookies = parse_cookie_header(cookie_header, self._wanted)
        set_cookies: list[str] = []
        state = self._consent.decide(cookies.get(self._consent.cookie), gpc,
                                     cookies.get(TCF_COOKIE))

        visitor_id = cookies.get(VISITOR_COOKIE)
        if visitor_id is not None and not VISITOR_ID.fullmatch(visitor_id):
            visitor_id = None
        held: dict[str, ClickId] = {}
        cookie_rejected = False
        set_visitor = False
        resign = False
        attr_raw = cookies.get(ATTR_COOKIE)
        if attr_raw and not state.storage:
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
            visitor_id, set_visitor = secrets.token_hex(16), True
        if set_visitor:
            set_cookies.append(set_cookie(VISITOR_COOKIE, visitor_id, max_age=self._max_age,
                                          secure=secure, http_only=False))

        scan = scan_query(raw_query, self._params, self._strip)
        click_ids = held
        new_clicks: list[str] = []
        for param, value in scan.found.items():
            old = click_ids.get(param)
            if old is None or old.value != value:
                click_ids[param] = ClickId(value, int(now * 1000) / 1000)   # as the cookie keeps it
                new_clicks.append(param)
        changed = (bool(new_clicks) or resign) and state.storage
        if changed:
            set_cookies.append(set_cookie(ATTR_COOKIE, self._codec.encode(visitor_id, click_ids),
                                          max_age=self._max_age, secure=secure, http_only=True))
        elif cookie_rejected:
            set_cookies.append(set_cookie(ATTR_COOKIE, "", max_age=0, secure=secure,
                                          http_only=True))

        consent = state.marketing
        fbc = fbp = None
        if consent:
            fbc_cookie = cookies.get(FBC_COOKIE)
            fbclid = scan.found.get("fbclid") or _referer_fbclid(referer)
            if fbclid is None and not fbc_cookie and "fbclid" in click_ids:
                fbclid = click_ids["fbclid"].value
            fb = self._fb.build(host, fbclid, fbc_cookie, cookies.get(FBP_COOKIE))
            fbc, fbp = fb.fbc, fb.fbp
            for name, value in fb.to_set:
                set_cookies.append(set_cookie(name, value, max_age=FB_MAX_AGE, secure=secure,
                                              http_only=False, domain=fb.domain))

        return Visit(
            links_clicked_id=visitor_id, new_visitor=new_visitor, click_ids=click_ids,
            captured=list(scan.found), rejected=scan.rejected, cookie_rejected=cookie_rejected,
            consent=consent, fbc=fbc, fbp=fbp, set_cookies=set_cookies,
            upstream_query=scan.upstream_query, new_clicks=new_clicks, consent_state=state,
            ttp=_ttp(cookies.get(TTP_COOKIE)) if state.storage else None,
            preview=self._preview.valid(cookies.get(PREVIEW_COOKIE), now),
        )
