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
from proxy.pixels import (
    BrowserEvent,
    CompiledPixels,
    browser_events,
    script_open,
    tail_events,
    tail_id,
)
from proxy.transform.csp import CspNeeds, apply_csp
from proxy.transform.header_plan import HeaderPlan, HeaderPlans
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
    templates when the page has one, else through the streaming `HtmlTransform`.
    The head snippet is kept in parts (`CompiledPixels.head`), joined only into the
    page itself."""

    __slots__ = ("_body", "_head", "_html", "_nonce", "_pixels", "_plan", "_rewrite",
                 "_template", "_templates", "has_snippets", "tail_element")

    def __init__(self, plan: HeaderPlan, head: list[bytes], pixels: CompiledPixels | None,
                 rewrite: LinkRewrite | None, nonce: str | None, templates: TemplateCache,
                 tail_element: str | None) -> None:
        """`head`: the pixels' head snippet in parts (`CompiledPixels.head`), their
        script at `[1:-1]`; empty without pixels."""
        self._plan = plan
        self._head = head
        self._pixels = pixels
        self._body = pixels.body if pixels is not None else b""
        self._rewrite = rewrite
        self._nonce = nonce
        self._templates = templates
        self._html: HtmlTransform | None = None
        self._template: PageTemplate | None = None
        self.tail_element = tail_element
        self.has_snippets = bool(head or self._body)

    @property
    def html(self) -> HtmlTransform:
        if self._html is None:
            needs = None
            if self._pixels is not None:       # a meta CSP is rewritten for the script
                needs = CspNeeds(inline_scripts=(b"".join(self._head[1:-1]),),
                                 hosts=self._pixels.csp_hosts)
            plan = self._plan
            self._html = HtmlTransform(plan.encoding, b"".join(self._head), self._body,
                                       rewrite=self._rewrite, meta_csp=needs,
                                       nonce=self._nonce, utf16=plan.utf16)
        return self._html

    def feed(self, chunk: bytes) -> bytes:
        return self.html.feed(chunk)

    def feed_whole(self, raw: bytes) -> bytes:
        """The whole upstream body at once; what to send now (the rest comes from `finish`)."""
        if self._plan.utf16 is not None:
            return self.feed(raw)           # templates are built on ASCII-based bytes
        self._template = self._templates.get(
            raw, self._plan.coding, head=bool(self._head), body=bool(self._body),
            rewrite=self._rewrite, meta_csp=self._pixels is not None)
        return b"" if self._template is not None else self.feed(raw)

    @property
    def injected(self) -> bool:
        """A snippet went into the page."""
        if self._template is not None:
            return self._template.injected      # a slot only for a snippet there is
        return self.has_snippets and self._html is not None and self._html.injected

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
            return self._template.fill(self._head, self._body, tail)
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
    return PagePlan(headers, None, False, False)


_ORIGINS: dict[str, bytes] = {}
_ORIGINS_KEPT = 64


def _encoded(origin: str) -> bytes:
    """A public origin as bytes, the same object for every page: the template cache's
    key holds it, and an object's hash is computed once."""
    found = _ORIGINS.get(origin)
    if found is None:
        if len(_ORIGINS) >= _ORIGINS_KEPT:
            _ORIGINS.clear()
        found = _ORIGINS[origin] = origin.encode()
    return found


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
        rewrite = (rt.link_origins[0], _encoded(view.public_origin))
        if rt.route_links:      # a route's own page also moves its path-absolute links
            route = rt.routes.match(path)
            rewrite += (route.page_links if route is not None else rt.route_links,)
    if not pixels and rewrite is None and not wants_body and not (status == 200 and feed_wants):
        return passthrough(view, status, out_headers)
    compiled = rt.pixels.compiled(pixels) if pixels else None
    hosts = compiled.csp_hosts if compiled is not None else None
    plan = header_plans.get(view.method, status, out_headers, hosts,
                            compiled.hosts_key if compiled is not None else None)
    if not plan.transform:
        return passthrough(view, status, out_headers)
    links_kept = False
    if rewrite is not None and plan.script_hashes:
        # A link inside an inline script would change the bytes its hash allows.
        rewrite = None
        links_kept = True

    head: list[bytes] = []
    nonce = plan.nonce
    tail_element = None
    if compiled is not None:
        page_event_id = new_event_id()
        head = compiled.head(nonce, visit.links_clicked_id, page_event_id, events,
                             visit.consent_state.consent_mode() if compiled.has_google
                             else None)
        found = plan.headers_for(b"".join(head[1:-1])) if plan.hashed else list(plan.headers)
        if found is not None:
            headers = found
        else:                   # the policy names this very script's hash already
            needs = CspNeeds(inline_scripts=(b"".join(head[1:-1]),),
                             hosts=compiled.csp_hosts)
            decision = apply_csp(transformed_headers(out_headers), needs)
            headers, nonce = decision.headers, decision.nonce
            head[0] = script_open(nonce)
        tail_element = tail_id(page_event_id)
    else:
        headers = list(plan.headers)
    transform = PageTransform(plan, head, compiled, rewrite, nonce, templates, tail_element)
    return PagePlan(headers, transform, compiled is not None, links_kept)
