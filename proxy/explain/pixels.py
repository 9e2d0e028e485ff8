"""The pixels of `explain`: which tags a page gets, what they add to its CSP, and
whether the response is transformed at all."""

from __future__ import annotations

from proxy.attribution.visit import Visit
from proxy.runtime import Runtime

PIXEL_WHERE = {
    "meta": "head: base code + PageView; body: noscript image",
    "tiktok": "head: base code, ttq.load + ttq.page(); events via ttq.track",
    "linkedin": "head: Insight Tag; body: noscript image; conversions via lintrk",
    "google": "head: gtag.js config + Consent Mode default; conversions via send_to",
}


def pixel_lines(rt: Runtime, visit: Visit, path: str, method: str, status: int,
                 transformed: bool) -> list[str]:
    pixels = rt.pixels.for_path(path)
    lines: list[str] = []
    if not pixels:
        lines.append("none match this path")
    elif not visit.consent:
        lines.append("none: no consent (" + ", ".join(p.name for p in pixels) + " would match)")
        pixels = ()
    allowed = rt.pixels.allowed(path, visit.consent_state) if pixels else ()
    for p in pixels:
        if p not in allowed:
            lines.append(f"{p.name:<14} {p.type:<8} not injected: no consent for TCF vendor "
                         f"{p.tcf_vendor} (vendor consent, purposes 1 and 7)")
            continue
        lines.append(f"{p.name:<14} {p.type:<8} {PIXEL_WHERE.get(p.type, '')}"
                     + (f"{p.position}: html snippet" if p.type == "html" else ""))
    pixels = allowed
    if pixels:
        markup = rt.pixels.render(pixels, page_event_id="x", links_clicked_id="x",
                                  consent_mode=visit.consent_state.consent_mode())
        for directive, hosts in markup.csp_hosts.items():
            lines.append(f"CSP adds  {directive} {' '.join(hosts)}")
    if transformed and (pixels or rt.config.proxy.rewrite_links):
        what = "pixels injected" if pixels else "no pixels"
        links = ", links rewritten" if rt.config.proxy.rewrite_links else ""
        lines.append(f"response: transformed while streaming ({what}{links})")
    elif transformed:
        lines.append("response: passes through untouched (nothing to inject or rewrite)")
    else:
        why = "a HEAD request" if method == "HEAD" else \
            f"status {status}" if status != 200 else "not HTML"
        lines.append(f"response: passes through untouched ({why}; only 200 text/html is "
                     "transformed)")
    return lines
