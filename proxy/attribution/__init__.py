"""Attribution: click ids from landing URLs, the visitor id, signed cookies, consent,
Meta's _fbc/_fbp, and the journey store that outlives the cookies.

The request path calls `Attribution.on_request(...)` (pure) and hands the `Visit`
to `JourneyStore.record` (memory only; written behind in batches).
"""

from proxy.attribution.clickids import ClickId
from proxy.attribution.cookies import ATTR_COOKIE, FBC_COOKIE, FBP_COOKIE, VISITOR_COOKIE
from proxy.attribution.journeys import Journey, JourneyStore
from proxy.attribution.visit import Attribution, Visit

__all__ = [
    "ATTR_COOKIE", "FBC_COOKIE", "FBP_COOKIE", "VISITOR_COOKIE",
    "Attribution", "ClickId", "Journey", "JourneyStore", "Visit",
]
