"""Per-response cost of the page path, stage by stage, in microseconds (no sockets).

The same job page and rules as side_by_side.py (Meta pixel, a nonce CSP, 17
absolute links naming the upstream origin; `stages.setup`). Each line is the best of
7 rounds, so a shared machine disturbs it less; compare lines within one run. The
whole request path's stages (attribution, rules, headers, log, metrics) are in
`stages.py`.

    python benchmarks/bench_page.py
"""

from __future__ import annotations

import gzip
import itertools
import sys
import zlib

from side_by_side import NONCE
from stages import ORIGIN, PUBLIC, PUBLIC_HOST, VISITOR, setup, timed

from proxy.conversions.events import new_event_id
from proxy.http.headers import response_headers
from proxy.transform.csp import CspNeeds, apply_csp
from proxy.transform.headers import should_transform, transformed_headers
from proxy.transform.html import HtmlTransform


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
    timed("gzip: zlib alone (inflate + deflate)", zlib_only)
    timed("transform: all, gzip", lambda: whole(HtmlTransform(
        "gzip", head, body, rewrite=rewrite, meta_csp=needs, nonce=nonce), gz))
    return 0


if __name__ == "__main__":
    sys.exit(main())
