"""The head of one proxied response, planned from values.

Status and reason as the upstream sent them, the page plan's headers, the visit's
Set-Cookies, the handoff's cookies and events header, and the length rule: a
`Content-Length` when the length is known (a whole document, or the upstream's own
for a body that passes through untouched), chunked when the body streams with no
known length, none when there is no body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

from proxy.attribution.visit import Visit
from proxy.handoff import Incoming, events_header, plan_handoff
from proxy.page import PagePlan
from proxy.pixels import BrowserEvent
from proxy.request_view import RequestView

Framing = Literal["length", "chunked", "none"]
NO_BODY = (204, 304)


class UpstreamHead(Protocol):
    """What the head plan reads of the upstream's answer (`UpstreamResponse`)."""

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> bytes: ...

    @property
    def content_length(self) -> int | None: ...


class ResponseHead(NamedTuple):
    """Immutable, built once per response (a NamedTuple: see RequestView)."""

    status: int
    reason: str | None
    headers: list[tuple[str, str]]
    set_cookies: Sequence[str]
    events_header: str | None          # X-Careers-Edge-Events, for the page's script
    content_length: int | None
    hold: bool                          # the head leaves with the body, in one send
    framing: Framing


def plan_head(view: RequestView, visit: Visit, up: UpstreamHead, page: PagePlan,
              incoming: Incoming, fired: Sequence[BrowserEvent], *, pixels: bool,
              has_body: bool, document: int | None, hold: bool) -> ResponseHead:
    """`fired`: browser events this response fired before its head; `pixels`: any
    pixel is configured (the events header is for its script); `has_body`: the
    upstream's answer has one (not HEAD, 1xx, 204, 304); `document`: the length of a
    body already whole and transformed; `hold`: the whole body is here."""
    status = up.status
    set_cookies: Sequence[str] = visit.set_cookies
    header = None
    if fired or incoming.had_carry:
        # Events this response does not track itself: a header for the page's script,
        # a cookie for the next page; or the carry is spent (tracked here, or no
        # consent to keep it).
        handoff = plan_handoff(incoming, fired, status=status,
                               spends_carry=page.consumed_carry
                               or not visit.consent_state.storage,
                               script_request=view.script, secure=view.secure)
        if handoff.set_cookies:
            set_cookies = (*set_cookies, *handoff.set_cookies)
        if handoff.header and pixels:
            header = events_header(handoff.header)
    # The length rule: the whole (transformed) document's, else the upstream's for a
    # body passing through untouched; none declared when it streams (or has none).
    length = document
    if length is None and page.transform is None and status >= 200 \
            and status not in NO_BODY:
        length = up.content_length
    framing: Framing = "length" if length is not None else "chunked" if has_body else "none"
    return ResponseHead(status, up.reason.decode("latin-1") or None, page.headers,
                        set_cookies, header, length, hold, framing)
