"""What happens to one upstream response on its way out: pass through, or transform.

`plan_page` decides from the status, headers, path and consent: which pixels the
page gets, how the CSP lets them run, and whether the body streams through a
`PageTransform` (decode → rewrite links → inject → encode). Every other response
passes through byte-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.conversions.events import new_event_id
from proxy.pixels import BrowserEvent, browser_events, tail_events, tail_id
from proxy.transform.csp import CspNeeds, apply_csp
from proxy.transform.headers import transformed_headers, weaken_etag
from proxy.transform.html import DEFAULT_OBSERVE, HtmlTransform
from proxy.transform.links import LinkRewrite
from proxy.transform.template import PageTemplate, TemplateCache

if TYPE_CHECKING:
    from proxy.attribution.visit import Visit
    from proxy.edge import Edge
    from proxy.runtime import Runtime

log = logging.getLogger("careers_edge.page")


class PageTransform:
    """The HTML transform of one response, plus events that are only known at its end.

    A body that arrived whole goes through `feed_whole`: from the Edge's page
    templates when the page has one, else through the streaming `HtmlTransform`."""

    def __init__(self, encoding: str | None, coding: str, head: bytes, body: bytes,
                 rewrite: LinkRewrite | None, needs: CspNeeds | None,
                 nonce: str | None, templates: TemplateCache, tail_element: str | None) -> None:
        self._encoding = encoding
        self._coding = coding
        self._head = head
        self._body = body
        self._rewrite = rewrite
        self._needs = needs
        self._nonce = nonce
        self._templates = templates
        self._html: HtmlTransform | None = None
        self._template: PageTemplate | None = None
        self.tail_element = tail_element

    @property
    def html(self) -> HtmlTransform:
        if self._html is None:
            self._html = HtmlTransform(self._encoding, self._head, self._body,
                                       rewrite=self._rewrite, meta_csp=self._needs,
                                       nonce=self._nonce)
        return self._html

    def feed(self, chunk: bytes) -> bytes:
        return self.html.feed(chunk)

    def feed_whole(self, raw: bytes) -> bytes:
        """The whole upstream body at once; what to send now (the rest comes from `finish`)."""
        self._template = self._templates.get(
            raw, self._coding, head=bool(self._head), body=bool(self._body),
            rewrite=self._rewrite, meta_csp=self._needs is not None)
        return b"" if self._template is not None else self.feed(raw)

    def observed(self) -> bytes:
        if self._template is not None:
            return self._template.head_bytes(DEFAULT_OBSERVE)
        return self.html.head_bytes

    def finish(self, events: Sequence[BrowserEvent] = ()) -> bytes:
        tail = b""
        if events and self.tail_element is not None:
            # An inert data block at the very end: the head script reads it on
            # DOMContentLoaded, and a parser moves it into <body> wherever it lands.
            tail = tail_events(self.tail_element, browser_events(events))
        if self._template is not None:
            return self._template.render(self._head, self._body, tail)
        return self.html.finish(tail)


@dataclass(slots=True)
class PagePlan:
    headers: list[tuple[str, str]]
    transform: PageTransform | None
    consumed_carry: bool = False


def _if_none_match_weak(request: web.BaseRequest) -> bool:
    return "W/" in request.headers.get(hdrs.IF_NONE_MATCH, "")


def passthrough(request: web.BaseRequest, status: int,
                headers: list[tuple[str, str]]) -> PagePlan:
    if status == 304 and _if_none_match_weak(request):
        # The 200 this revalidates went out with a weakened ETag: repeat it.
        headers = [(k, weaken_etag(v) if k.lower() == "etag" else v) for k, v in headers]
    return PagePlan(headers, None)


def plan_page(rt: Runtime, edge: Edge, request: web.BaseRequest, up, out_headers,
              visit: Visit, path: str, public_origin: str,
              events: Sequence[BrowserEvent], *, wants_body: bool) -> PagePlan:
    # The cheap questions first: most responses need no transform whatever they are.
    pixels = rt.pixels.allowed(path, visit.consent_state) if visit.consent and rt.pixels \
        else ()
    rewrite: LinkRewrite | None = None
    if rt.config.proxy.rewrite_links:
        rewrite = (rt.link_origins[0], public_origin.encode())
        if rt.route_links:      # a route's own page also moves its path-absolute links
            route = rt.routes.match(path)
            rewrite += (route.page_links if route is not None else rt.route_links,)
    if not pixels and rewrite is None and not wants_body and not (
            up.status == 200 and edge.feed_wants(public_origin + path)):
        return passthrough(request, up.status, out_headers)
    hosts = rt.pixels.csp_hosts_for(pixels) if pixels else None
    plan = edge.header_plans.get(request.method, up.status, out_headers, hosts)
    if not plan.transform:
        return passthrough(request, up.status, out_headers)
    if rewrite is not None and plan.script_hashes:
        # A link inside an inline script would change the bytes its hash allows.
        rewrite = None
        edge.metrics.links_kept.inc()

    head = body = b""
    nonce = plan.nonce
    needs = None
    tail_element = None
    if pixels:
        page_event_id = new_event_id()
        markup = rt.pixels.render(pixels, page_event_id=page_event_id,
                                  links_clicked_id=visit.links_clicked_id, events=events,
                                  consent_mode=visit.consent_state.consent_mode())
        needs = CspNeeds(inline_scripts=(markup.head_script.encode(),),
                         hosts=markup.csp_hosts)
        headers = plan.headers_for(needs.inline_scripts[0])
        if headers is None:     # the policy names this very script's hash already
            decision = apply_csp(transformed_headers(out_headers), needs)
            headers, nonce = decision.headers, decision.nonce
        head, body = markup.head(nonce), markup.body_html.encode()
        tail_element = tail_id(page_event_id)
    else:
        headers = list(plan.headers)
    encoding, coding = plan.encoding, plan.coding
    if pixels:
        edge.metrics.injections.inc()
    transform = PageTransform(encoding, coding, head, body, rewrite, needs, nonce,
                              edge.templates, tail_element)
    return PagePlan(headers, transform, consumed_carry=bool(pixels))
