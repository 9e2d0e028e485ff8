"""What one Cookie header tells attribution: the cookies it reads, each checked once.

Everything here is a function of the header's text alone (and the configured
names), so a visitor's header, sent again with each request of a page view, is
read and checked once and then remembered (bounded). What depends on the moment
(consent by Sec-GPC, expiry of click ids and of the preview cookie) is decided by
the caller on every request.
"""

from __future__ import annotations

from typing import NamedTuple

from proxy.attribution.clickids import valid_value
from proxy.attribution.consent import TCF_COOKIE
from proxy.attribution.cookies import (
    ATTR_COOKIE,
    FBC_COOKIE,
    FBP_COOKIE,
    PREVIEW_COOKIE,
    TTP_COOKIE,
    VISITOR_COOKIE,
    VISITOR_ID,
    parse_cookie_header,
)
from proxy.attribution.fbparams import valid_fbc, valid_fbp

# Headers remembered at most, and the longest remembered: ≤ 4 MB of text at worst.
MEMO_ENTRIES = 1024
MEMO_MAX_HEADER = 4096


class Jar(NamedTuple):
    visitor_id: str | None      # a well-formed linksClickedId
    attr: str | None            # the attribution cookie, as sent (verified by its codec)
    fbc_sent: bool              # an _fbc cookie with any value, well-formed or not
    fbc: str | None             # _fbc, when of Meta's documented shape
    fbp: str | None             # _fbp, likewise
    ttp: str | None             # the TikTok pixel's _ttp, when plain URL-safe text
    preview: str | None         # the preview cookie, as sent (checked per request: expiry)
    consent: str | None         # the consent cookie, as sent
    tc_string: str | None       # the TCF cookie, as sent (when `[consent] tcf`)


NO_COOKIES = Jar(None, None, False, None, None, None, None, None, None)


class JarReader:
    """Reads Cookie headers into `Jar`s, remembering the last `MEMO_ENTRIES`."""

    def __init__(self, consent_cookie: str, tcf: bool) -> None:
        self._consent_cookie = consent_cookie
        self._wanted = frozenset(
            {VISITOR_COOKIE, ATTR_COOKIE, FBC_COOKIE, FBP_COOKIE, TTP_COOKIE, PREVIEW_COOKIE,
             consent_cookie} | ({TCF_COOKIE} if tcf else set()))
        self._memo: dict[str, Jar] = {}

    def read(self, header: str | None) -> Jar:
        if not header:
            return NO_COOKIES
        jar = self._memo.get(header)
        if jar is None:
            jar = self.parse(header)
            if len(header) <= MEMO_MAX_HEADER:
                if len(self._memo) >= MEMO_ENTRIES:
                    self._memo.clear()
                self._memo[header] = jar
        return jar

    def parse(self, header: str) -> Jar:
        """The header read and checked afresh (`read` remembers what this gives)."""
        cookies = parse_cookie_header(header, self._wanted)
        visitor_id = cookies.get(VISITOR_COOKIE)
        if visitor_id is not None and not VISITOR_ID.fullmatch(visitor_id):
            visitor_id = None
        fbc = cookies.get(FBC_COOKIE)
        ttp = cookies.get(TTP_COOKIE)
        return Jar(visitor_id, cookies.get(ATTR_COOKIE), bool(fbc), valid_fbc(fbc),
                   valid_fbp(cookies.get(FBP_COOKIE)),
                   ttp if ttp and valid_value(TTP_COOKIE, ttp) else None,
                   cookies.get(PREVIEW_COOKIE), cookies.get(self._consent_cookie),
                   cookies.get(TCF_COOKIE))
