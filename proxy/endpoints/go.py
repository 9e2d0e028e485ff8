"""`{prefix}/go?to=URL`: the interstitial redirect page.

It fires `RedirectPage` (browser pixel and server event, one event_id) with the
visitor's linksClickedId, then sends the visitor on — only to targets that
`[redirect] allow` lists, so it can never serve as an open redirect.
"""

from __future__ import annotations

import base64
import logging
import secrets
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from aiohttp import hdrs, web

from proxy.conversions.events import new_event_id
from proxy.firing import browser_data, visit_event
from proxy.http.errors import error_response
from proxy.pixels import BrowserEvent, js
from proxy.runtime import public_origin, visitor

if TYPE_CHECKING:
    from proxy.edge import Edge


log = logging.getLogger("careers_edge.go")

EVENT = "RedirectPage"
DELAY_MS = 400


def allowed(edge: Edge, to: str) -> bool:
    parts = urlsplit(to)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return any(g.match(to) for g in edge.runtime.redirect_allow)


def page(to: str, nonce: str, head: bytes, body_html: str) -> bytes:
    t = escape(to, quote=True)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="robots" content="noindex"><meta name="referrer" content="origin">'
        f'<meta http-equiv="refresh" content="2;url={t}"><title>Redirecting…</title>'
        + head.decode() +
        f"<script nonce=\"{nonce}\">setTimeout(function(){{location.replace({js(to)})}},"
        f"{DELAY_MS});</script></head><body style=\"font:16px system-ui,sans-serif;"
        f'margin:4em auto;max-width:30em\"><p>Taking you to <a href="{t}" rel="noopener">'
        f"{escape(urlsplit(to).netloc)}</a>…</p>{body_html}</body></html>"
    ).encode()


async def go(request: web.BaseRequest, edge: Edge, target: str) -> web.StreamResponse:
    rt = edge.runtime
    query = target.partition("?")[2]
    to = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == "to"), "")
    accept = request.headers.get(hdrs.ACCEPT)
    if not to or not allowed(edge, to):
        return error_response(400, "This redirect target is not allowed.", accept)

    client = visitor(rt, request)     # the pipeline refused hosts not ours before this
    visit = rt.attribution.on_request(
        raw_query=query, cookie_header=request.headers.get(hdrs.COOKIE), host=client.host,
        secure=client.proto == "https", gpc=request.headers.get("Sec-GPC", "") == "1",
        referer=request.headers.get(hdrs.REFERER))
    edge.count_visit(visit)
    event = visit_event(visit, EVENT, public_origin(rt, client) + target, client.ip,
                        request.headers.get(hdrs.USER_AGENT), fields={"to": to[:512]},
                        rule="redirect", dedupe_hours=0)
    sinks = [rt.sinks[n] for n in rt.config.redirect.send_to if n in rt.sinks]
    submitted = True
    if sinks:
        try:
            await edge.outbox.submit(event, sinks, consent=visit.consent_state)
        except Exception:
            # The visitor still goes where the link says; the loss is loud in the log
            # and metrics, and the browser does not track an event the server lost.
            log.exception("outbox submit failed for %s (%s)", event.name, event.event_id)
            edge.metrics.conversions.labels("*", "error").inc()
            submitted = False

    nonce = base64.b64encode(secrets.token_bytes(16)).decode()
    pixels = rt.pixels.allowed(rt.prefix + "/go", visit.consent_state) if visit.consent \
        else ()
    events = [BrowserEvent(EVENT, event.event_id, browser_data(event))] if submitted else []
    markup = rt.pixels.render(pixels, page_event_id=new_event_id(),
                              links_clicked_id=visit.links_clicked_id, events=events,
                              consent_mode=visit.consent_state.consent_mode())
    hosts = " ".join(h for h in markup.csp_hosts.get("script-src", ()))
    imgs = " ".join(h for h in markup.csp_hosts.get("img-src", ()))
    conns = " ".join(h for h in markup.csp_hosts.get("connect-src", ()))
    frames = " ".join(markup.csp_hosts.get("frame-src", ()))
    resp = web.Response(
        body=page(to, nonce, markup.head(nonce), markup.body_html),
        content_type="text/html", charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}' {hosts}; img-src {imgs} data:; "
                f"connect-src {conns}; style-src 'unsafe-inline'; base-uri 'none'"
                + (f"; frame-src {frames}" if frames else "")),
            "Referrer-Policy": "origin",
        })
    for cookie in visit.set_cookies:
        resp.headers.add(hdrs.SET_COOKIE, cookie)
    return resp
