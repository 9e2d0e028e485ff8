"""Per-response cost of the page path, stage by stage, in microseconds (no sockets).

The same job page and rules as side_by_side.py (Meta pixel, a nonce CSP, 17
absolute links naming the upstream origin; `stages.setup`). Each line is the best of
7 rounds, so a shared machine disturbs it less; compare lines within one run. The
whole request path's stages (attribution, rules, headers, log, metrics) are in
`stages.py`.

    python benchmarks/bench_page.py
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import sys
import zlib

from side_by_side import NONCE, RETURNING
from stages import ORIGIN, PUBLIC, PUBLIC_HOST, VISITOR, setup, timed

from proxy.conversions.events import new_event_id
from proxy.handoff import NOTHING
from proxy.http.headers import ClientView, response_headers
from proxy.page import plan_page
from proxy.pixels import PixelSet
from proxy.request_view import RequestView, attribute
from proxy.response_head import plan_head
from proxy.transform.csp import CspNeeds, apply_csp
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.headers import should_transform, transformed_headers
from proxy.transform.html import HtmlTransform
from proxy.transform.template import TemplateCache


def main() -> int:
    s = setup()
    page, raw, rt = s.page, s.raw_response, s.rt
    out = response_headers(raw, rt.rewriter, PUBLIC, PUBLIC_HOST)
    pixels = rt.pixels.for_path("/jobs/1")

    def render():
        return rt.pixels.render(pixels, page_event_id=new_event_id(), links_clicked_id=VISITOR)
    markup = render()
    needs = CspNeeds(inline_scripts=(markup.head_script.encode(),), hosts=markup.csp_hosts)
    nonce = apply_csp(transformed_headers(out), needs).nonce
    head, body = markup.head(nonce), markup.body_html.encode()
    rewrite = (ORIGIN.encode(), PUBLIC.encode())

    def whole(h: HtmlTransform, body: bytes = page) -> bytes:
        return h.feed(body) + h.finish()

    gz = gzip.compress(page, 6)

    def zlib_only() -> bytes:
        """What any gzip re-encoding costs: inflate, deflate with a sync flush."""
        d, c = zlib.decompressobj(31), zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(d.decompress(gz)) + c.flush(zlib.Z_SYNC_FLUSH) + c.flush()

    nonces = (f"n{i}" for i in itertools.count())

    def csp_new_nonce():
        h = [(k, v.replace(NONCE, n) if k == "Content-Security-Policy" else v)
             for k, v in transformed_headers(out) for n in [next(nonces)]]
        return apply_csp(h, needs)

    print(f"page {len(page)} bytes, {page.count(ORIGIN.encode())} upstream-origin links")
    timed("response_headers (7 headers)", lambda: response_headers(
        raw, rt.rewriter, PUBLIC, PUBLIC_HOST))
    timed("should_transform", lambda: should_transform("GET", 200, out))
    timed("pixels.for_path", lambda: rt.pixels.for_path("/jobs/1"))
    timed("new_event_id", new_event_id)
    timed("pixels.render", render)
    timed("transformed_headers + apply_csp", lambda: apply_csp(transformed_headers(out), needs))
    timed("  same, a new nonce every response", csp_new_nonce)
    timed("HtmlTransform() with link rewriting", lambda: HtmlTransform(
        None, head, body, rewrite=rewrite, meta_csp=needs, nonce=nonce))
    timed("HtmlTransform() without", lambda: HtmlTransform(
        None, head, body, meta_csp=needs, nonce=nonce))
    timed("transform: rewrite links only", lambda: whole(HtmlTransform(None, b"",
                                                                      rewrite=rewrite)))
    timed("transform: inject head snippet only", lambda: whole(HtmlTransform(None, head)))
    timed("transform: inject head + body, CSP meta hook", lambda: whole(HtmlTransform(
        None, head, body, meta_csp=needs, nonce=nonce)))
    timed("transform: all (as careers-edge serves it)", lambda: whole(HtmlTransform(
        None, head, body, rewrite=rewrite, meta_csp=needs, nonce=nonce)))
    planners(rt, out)
    timed("gzip: zlib alone (inflate + deflate)", zlib_only)
    timed("transform: all, gzip", lambda: whole(HtmlTransform(
        "gzip", head, body, rewrite=rewrite, meta_csp=needs, nonce=nonce), gz))
    return 0


class Head:
    """The upstream answer's head, as plan_head reads it."""

    def __init__(self, length: int) -> None:
        self.status, self.reason, self.content_length = 200, b"OK", length


def planners(rt, out) -> None:
    """The request path's planners, from the request value to the response's head."""
    client = ClientView("127.0.0.1", "http", PUBLIC_HOST, b"127.0.0.1")
    cookie = RETURNING.partition(": ")[2]

    def view(cookie: str | None = None) -> RequestView:
        return RequestView("GET", "/jobs/1", "/jobs/1", "", cookie, "text/html", None,
                           "wrk", False, "", False, client, "r" * 16, PUBLIC)
    new, returning = view(), view(cookie)
    visit = attribute(rt.attribution, returning)
    plans, templates = HeaderPlans(), TemplateCache()
    up = Head(4800)

    def page(rt=rt):
        return plan_page(rt, returning, 200, out, visit, [], wants_body=False,
                         feed_wants=False, header_plans=plans, templates=templates)
    passing = dataclasses.replace(rt, pixels=PixelSet((), rt.sinks))   # no pixel
    plan = page()
    timed("planners: RequestView()", lambda: view(cookie), 5000)
    timed("planners: attribute, a new visitor", lambda: attribute(rt.attribution, new))
    timed("planners: attribute, returning", lambda: attribute(rt.attribution, returning))
    timed("planners: plan_page, pass-through", lambda: page(passing), 5000)
    timed("planners: plan_page, Meta pixel", page)
    timed("planners: plan_head", lambda: plan_head(
        returning, visit, up, plan, NOTHING, (), pixels=True, has_body=True, document=None,
        hold=False), 5000)


if __name__ == "__main__":
    sys.exit(main())
