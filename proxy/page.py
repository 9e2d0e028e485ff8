"""What happens to one upstream response on its way out: pass through, or transform.

`plan_page` decides from the status, headers, path and consent (values: no socket,
no `Edge`): which pixels the page gets, how the CSP lets them run, and whether the
body streams through a `PageTransform` (decode → rewrite links → inject → encode).
Every other response passes through byte-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.conversions.events import new_event_id
from proxy.pixels import BrowserEvent, browser_events, tail_events, tail_id
from proxy.transform.csp import CspNeeds, apply_csp
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.headers import transformed_headers, weaken_etag
from proxy.transform.html import DEFAULT_OBSERVE, HtmlTransform
from proxy.transform.links import LinkRewrite
from proxy.transform.template import PageTemplate, TemplateCache

if TYPE_CHECKING:
    from proxy.attribution.visit import Visit
    from proxy.request_view import RequestView
    from proxy.runtime import Runtime

log = logging.getLogger("careers_edge.page")


class PageTransform:
    """The HTML transform of one response, plus events that are only known at its end.

    A body that arrived whole goes through `feed_whole`: from the Edge's page
    templates when the page has one, else through the streaming `HtmlTransform`."""

    def __init__(self, encoding: str | None, coding: str, head: bytes, body: bytes,
                 rewrite: LinkRewrite | None, needs: CspNeeds | None,
                 nonce: str | None, templates: TemplateCache, tail_element: str | None,
                 utf16: str | None = None) -> None:
        self._encoding = encoding
        self._utf16 = utf16
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
                                       nonce=self._nonce, utf16=self._utf16)
        return self._html

    def feed(self, chunk: bytes) -> bytes:
        return self.html.feed(chunk)

    def feed_whole(self, raw: bytes) -> bytes:
        """The whole upstream body at once; what to send now (the rest comes from `finish`)."""
        if self._utf16 is not None:
            return self.feed(raw)           # templates are built on ASCII-based bytes
        self._template = self._templates.get(
            raw, self._coding, head=bool(self._head), body=bool(self._body),
            rewrite=self._rewrite, meta_csp=self._needs is not None)
        return b"" if self._template is not None else self.feed(raw)

    @property
    def has_snippets(self) -> bool:
        return bool(self._head or self._body)

    @property
    def injected(self) -> bool:
        """A snippet went into the page."""
        if not self.has_snippets:
            return False
        if self._template is not None:
            return self._template.injected
        return self._html is not None and self._html.injected

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
    consumed_carry: bool = False        # the page tracks the carried events itself
    links_kept: bool = False            # links left as they are for the page's CSP hashes


def passthrough(view: RequestView, status: int, headers: list[tuple[str, str]]) -> PagePlan:
    if status == 304 and view.weak_if_none_match:
        # The 200 this revalidates went out with a weakened ETag: repeat it.
        headers = [(k, weaken_etag(v) if k.lower() == "etag" else v) for k, v in headers]
    return PagePlan(headers, None)


def plan_page(rt: Runtime, view: RequestView, status: int, out_headers: list[tuple[str, str]],
              visit: Visit, events: Sequence[BrowserEvent], *, wants_body: bool,
              feed_wants: bool, header_plans: HeaderPlans,
              templates: TemplateCache) -> PagePlan:
    """`wants_body`: a rule reads the page; `feed_wants`: the job feed wants this 200
    page; `header_plans`, `templates`: the caches that outlive a rules reload."""
    # The cheap questions first: most responses need no transform whatever they are.
    path = view.path
    pixels = rt.pixels.allowed(path, visit.consent_state) if visit.consent and rt.pixels \
        else ()
    rewrite: LinkRewrite | None = None
    if rt.config.proxy.rewrite_links:
        rewrite = (rt.link_origins[0], view.public_origin.encode())
        if rt.route_links:      # a route's own page also moves its path-absolute links
            route = rt.routes.match(path)
            rewrite += (route.page_links if route is not None else rt.route_links,)
    if not pixels and rewrite is None and not wants_body and not (status == 200 and feed_wants):
        return passthrough(view, status, out_headers)
    hosts = rt.pixels.csp_hosts_for(pixels) if pixels else None
    plan = header_plans.get(view.method, status, out_headers, hosts)
    if not plan.transform:
        return passthrough(view, status, out_headers)
    links_kept = False
    if rewrite is not None and plan.script_hashes:
        # A link inside an inline script would change the bytes its hash allows.
        rewrite = None
        links_kept = True

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
    transform = PageTransform(plan.encoding, plan.coding, head, body, rewrite, needs, nonce,
                              templates, tail_element, plan.utf16)
    return PagePlan(headers, transform, consumed_carry=bool(pixels), links_kept=links_kept)
