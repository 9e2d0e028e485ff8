"""One proxied request, reduced once to the values the stages read.

The pipeline reads the aiohttp request here and nowhere else on the way down: the
planners (attribution, rules, page, head, handoff) take this value, so each is a
function of values, testable without a socket.
"""

from __future__ import annotations

from typing import NamedTuple

from proxy.attribution.visit import Attribution, Visit
from proxy.http.headers import ClientView


class RequestView(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass, whose `__init__` sets
    each field through `object.__setattr__` (≈10× the cost, on every request)."""

    method: str
    target: str                 # origin-form, as the visitor sent it
    path: str
    query: str                  # without the "?"
    cookie: str | None          # the Cookie header
    accept: str | None
    referer: str | None
    user_agent: str | None
    gpc: bool                   # Sec-GPC: 1
    if_none_match: str          # "" when absent
    script: bool                # a fetch or XMLHttpRequest (Sec-Fetch-Dest: empty)
    client: ClientView
    request_id: str             # the one sent upstream and logged
    public_origin: str          # scheme://host visitors use

    @property
    def secure(self) -> bool:
        return self.client.proto == "https"

    @property
    def page_url(self) -> str:
        """The public URL asked for, query included."""
        q = self.query
        return self.public_origin + self.path + ("?" + q if q else "")

    @property
    def weak_if_none_match(self) -> bool:
        """The visitor revalidates a weak ETag (one the proxy weakened, say)."""
        return "W/" in self.if_none_match


def attribute(attribution: Attribution, view: RequestView) -> Visit:
    """Who the visitor is to the ad networks: click ids, cookies, consent."""
    return attribution.on_request(
        raw_query=view.query, cookie_header=view.cookie, host=view.client.host,
        secure=view.client.proto == "https", gpc=view.gpc, referer=view.referer)
