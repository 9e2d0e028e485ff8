"""The request path, top to bottom.

    request in → attribution (click ids, cookies, consent)
               → upstream (transport)
               → classify (rules → events) → outbox (durable)
               → transform (inject, rewrite links, CSP)
               → respond (streaming)

Each stage is a call into its own module; this one only wires them. Nothing a
stage does for tracking may break the visitor's page: a failing injection or
enqueue is logged and the page is served as the upstream sent it.
"""

from __future__ import annotations

import logging
import math
import time

from aiohttp import hdrs, web
from multidict import CIMultiDict

from proxy.access_log import REQUEST_ID_HEADER, trusted_request_id
from proxy.detect.json_body import JsonCollector
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.rules import RequestFacts, ResponseFacts
from proxy.edge import EDGE, Edge
from proxy.firing import fire
from proxy.handoff import Incoming, events_header, from_script, plan_handoff
from proxy.http.body import BodyMalformed, BodyRefused, request_body
from proxy.http.errors import error_response
from proxy.http.headers import (
    EVENTS_HEADER,
    OriginRewriter,
    client_view,
    header_value,
    request_headers,
    response_headers,
    via_loop,
)
from proxy.http.hosts import MISDIRECTED
from proxy.http.response import ProxyResponse
from proxy.http.route_table import PathEscapes
from proxy.http.server import HTTP_VERSIONS, client_version, log_malformed
from proxy.http.target import BadTarget, origin_form, split_target
from proxy.http.upstream_errors import PoolTimeout, UpstreamError, UpstreamTimeout
from proxy.http.websocket import is_websocket, relay_websocket
from proxy.page import PageTransform, passthrough, plan_page
from proxy.pixels import BrowserEvent
from proxy.runtime import Runtime
from proxy.transform.codecs import CodecError
from proxy.transform.headers import unweaken_if_none_match

log = logging.getLogger("careers_edge.pipeline")

# TRACE echoes the request back, cookies included (cross-site tracing): never forwarded.
REFUSED_METHODS = frozenset({"TRACE", "TRACK"})
ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def bad_request(request: web.BaseRequest, why: str) -> web.Response:
    return error_response(400, why, request.headers.get(hdrs.ACCEPT),
                          headers={"Connection": "close"})


def host_refused(request: web.BaseRequest, status: int) -> web.Response:
    """421 for a host we do not serve, 400 for one that is not a host name; the body
    never repeats what was sent."""
    if status == MISDIRECTED:
        return error_response(MISDIRECTED, "This site is not served here.",
                              request.headers.get(hdrs.ACCEPT))
    return bad_request(request, "The Host header is not a host name.")


def not_found(request: web.BaseRequest, why: str = "No such endpoint.") -> web.Response:
    return error_response(404, why, request.headers.get(hdrs.ACCEPT))


def body_refused(request: web.BaseRequest, exc: BodyRefused) -> web.Response:
    """413, 408 or 400 for a body we do not take; the connection is not reused."""
    if isinstance(exc, BodyMalformed):
        log_malformed(exc.status, request.remote, "invalid body framing")
    return error_response(exc.status, exc.detail, request.headers.get(hdrs.ACCEPT),
                          headers={"Connection": "close"})


async def handle(request: web.Request) -> web.StreamResponse:
    """The application's catch-all route."""
    return await serve_request(request.app[EDGE], request)


async def serve_request(edge: Edge, request: web.BaseRequest) -> web.StreamResponse:
    rt: Runtime = edge.runtime
    started = time.monotonic()
    if client_version(request) not in HTTP_VERSIONS:
        version = client_version(request)
        log.warning("505 for an HTTP/%d.%d request from %s", *version, request.remote)
        return edge.finish(request, error_response(
            505, "This site speaks HTTP/1.1 and HTTP/1.0.", request.headers.get(hdrs.ACCEPT),
            headers={"Connection": "close"}), started)

    # -- the request line and Host, checked before anything is forwarded
    host_values = request.headers.getall(hdrs.HOST, [])
    if len(host_values) != 1 or not host_values[0]:
        return edge.finish(request, bad_request(request, "exactly one Host header is required"),
                           started)
    try:
        target = origin_form(request.raw_path, host_values[0])
    except BadTarget as exc:
        return edge.finish(request, bad_request(request, str(exc)), started)
    own = target.startswith(rt.prefix_slash) or target == rt.prefix
    if own and edge.endpoints.unchecked_host(target):
        return edge.finish(request, await edge.endpoints(request, target), started,
                           quiet=edge.access_log.quiet(target, rt.prefix))

    # -- who the visitor is, and whether the host asked for is one of ours
    raw = request.raw_headers
    client = client_view(raw, request.remote, host_values[0], request.scheme, rt.trusted,
                         rt.hosts)
    if client.refused:
        return edge.finish(request, host_refused(request, client.refused), started, client.ip)
    if own:
        if edge.endpoints.admin_only(target):     # the operators' door is elsewhere
            return edge.finish(request, not_found(request), started, client.ip, count=False)
        return edge.finish(request, await edge.endpoints(request, target), started, client.ip,
                           quiet=edge.access_log.quiet(target, rt.prefix))
    if request.method in REFUSED_METHODS:
        return edge.finish(request, error_response(
            405, "This method is not served here.", request.headers.get(hdrs.ACCEPT),
            headers={hdrs.ALLOW: ALLOW}), started, client.ip)
    if via_loop(raw):
        log.warning("508: the request came back through this proxy (its upstream points "
                    "at the proxy itself?)")
        return edge.finish(request, error_response(
            508, "The request came back to this proxy.", request.headers.get(hdrs.ACCEPT)),
            started, client.ip)
    path, query = split_target(target)
    if rt.allowed is not None and path not in rt.allowed:
        return edge.finish(request, not_found(request, "There is no such page on this site."),
                           started, client.ip)
    route = None
    if rt.routes:               # [[routes]]: another upstream serves this prefix
        try:
            route = rt.routes.match(path)
        except PathEscapes as exc:
            return edge.finish(request, error_response(
                400, str(exc), request.headers.get(hdrs.ACCEPT)), started, client.ip)
        slashed = rt.routes.slash_redirect(path) if route is None else None
        if slashed is not None:
            return edge.finish(request, web.Response(status=301, headers={
                hdrs.LOCATION: slashed + ("?" + query if query else "")}), started, client.ip)
    # A proxy in front may have named the request already; a visitor may not.
    rid = (request.remote in rt.trusted
           and trusted_request_id(request.headers.get(REQUEST_ID_HEADER))) \
        or edge.request_ids()
    public_origin = rt.public_origin or f"{client.proto}://{client.host}"
    if is_websocket(request):
        ws_headers = request_headers(raw, client, rid.encode())
        if route is not None:
            ws = await relay_websocket(request, edge, route.target(target), ws_headers,
                                       origin=route.origin)
        else:
            ws = await relay_websocket(request, edge, target, ws_headers)
        return edge.finish(request, ws, started, client.ip, None, rid)

    # -- attribution
    visit = rt.attribution.on_request(
        raw_query=query, cookie_header=request.headers.get(hdrs.COOKIE),
        host=client.host, secure=client.proto == "https",
        gpc=request.headers.get("Sec-GPC", "").strip() == "1",
        referer=request.headers.get(hdrs.REFERER))
    edge.count_visit(visit)
    if visit.upstream_query is not None:
        target = path + ("?" + visit.upstream_query if visit.upstream_query else "")

    # -- upstream
    candidates = rt.rules.candidates(request.method, path, query)
    headers = request_headers(raw, client, rid.encode())
    if request.headers.get(hdrs.IF_NONE_MATCH, "").find("W/") >= 0:
        headers = [(n, unweaken_if_none_match(v.decode("latin-1")).encode("latin-1"))
                   if n.lower() == b"if-none-match" else (n, v) for n, v in headers]
    transport, rewriter = edge.transport, rt.rewriter
    if route is not None:
        transport, rewriter = edge.upstreams.pool(route.origin), route.rewriter
        target = route.target(target)
    try:
        # Buffered (the default): the whole body is here before a connection is taken.
        body, sniffer = await request_body(request, candidates.form_fields, rt.body,
                                           json=candidates.request_json)
    except BodyRefused as exc:
        return edge.finish(request, body_refused(request, exc), started, client.ip, None, rid)
    t0 = time.monotonic()
    try:
        up = await transport.request(
            request.method, target.encode("utf-8", "surrogateescape"), headers, body.data,
            body_length=body.length, header_timeout=rt.timeout, pool_timeout=rt.pool_timeout)
    except BodyRefused as exc:          # a streamed body, part of it already upstream
        return edge.finish(request, body_refused(request, exc), started, client.ip,
                           time.monotonic() - t0, rid)
    except PoolTimeout as exc:
        edge.metrics.upstream_errors.labels("pool_timeout").inc()
        log.warning("upstream %s %s: %s", request.method, path, exc)
        return edge.finish(request, error_response(
            503, "The careers site is busy.", request.headers.get(hdrs.ACCEPT),
            headers={"Retry-After": str(math.ceil(rt.pool_timeout))}), started, client.ip,
            None, rid)
    except UpstreamTimeout:
        edge.metrics.upstream_errors.labels("timeout").inc()
        return edge.finish(request, error_response(
            504, "No answer from the careers site in time.", request.headers.get(hdrs.ACCEPT)),
            started, client.ip, time.monotonic() - t0, rid)
    except UpstreamError as exc:
        edge.metrics.upstream_errors.labels(type(exc).__name__).inc()
        log.warning("upstream %s %s: %s", request.method, path, exc)
        return edge.finish(request, error_response(
            502, "The careers site could not be reached.", request.headers.get(hdrs.ACCEPT)),
            started, client.ip, time.monotonic() - t0, rid)
    finally:
        body.close()
    upstream_seconds = time.monotonic() - t0
    edge.metrics.upstream_seconds.observe(upstream_seconds)

    try:
        resp, sent = await respond(request, edge, rt, up, visit, candidates, sniffer, path,
                                   query, public_origin, client, rewriter)
    finally:
        up.release()
    return edge.finish(request, resp, started, client.ip, upstream_seconds, rid, sent)


def count_json_skipped(edge: Edge, request_doc: JsonDoc | None,
                       response_doc: JsonDoc | None) -> None:
    """Count each JSON body a rule asked for and could not read, with why."""
    for side, doc in (("request", request_doc), ("response", response_doc)):
        if doc is not None and doc.problem is not None:
            edge.metrics.rule_json_skipped.labels(side, doc.problem).inc()


async def respond(request, edge: Edge, rt: Runtime, up, visit, candidates, sniffer, path: str,
                  query: str, public_origin: str, client,
                  rewriter: OriginRewriter) -> tuple[web.StreamResponse, int]:
    """The upstream's answer streamed to the visitor; with the body bytes sent."""
    out_headers = response_headers(up.headers, rewriter, public_origin, client.host)
    page_url = public_origin + path + ("?" + query if query else "")
    if candidates:              # facts for the rules; most pages have no candidate rule
        loc = header_value(up.headers, b"location")
        location = rewriter.url(loc.decode("latin-1"), public_origin) if loc else None
        req_facts = RequestFacts(request.method, path, query,
                                 sniffer.fields if sniffer else {},
                                 sniffer.json if sniffer else None)
        resp_facts = ResponseFacts(up.status, CIMultiDict(out_headers), location)

    # -- classify now when the body is not needed; events are durable before we answer
    incoming = Incoming.read(request.headers.get(hdrs.COOKIE))
    if not visit.consent:       # a carried event is neither tracked nor carried on
        incoming = incoming.dropped()
    fired: list[BrowserEvent] = []
    fired_early = not (candidates.needs_body or candidates.needs_json) or not up.has_body()
    if candidates and fired_early:
        matched = candidates.classify(req_facts, resp_facts, None)
        count_json_skipped(edge, req_facts.json, None)
        fired = await fire(edge, rt, matched, visit, request, client, page_url)
    browser_events = [*incoming.pending, *fired]
    # A JSON answer is watched as it streams past, unchanged; a bounded copy is kept.
    watch = JsonCollector.for_response(up.headers, up.content_length) \
        if candidates.needs_json and not fired_early else None

    # -- plan the page: pixels, CSP, transform (or plain pass-through)
    page = plan_page(rt, edge, request, up, out_headers, visit, path, public_origin,
                     browser_events, wants_body=candidates.needs_body and not fired_early)
    transform: PageTransform | None = page.transform
    # The whole body already here (a small page, a 304): head and body leave in one send.
    whole = not up.has_body() or up.complete

    classified = fired_early        # the late classification runs once, wherever first

    async def late_events() -> list[BrowserEvent]:
        nonlocal classified
        if not candidates or classified:
            return []
        classified = True
        body = transform.observed() if transform is not None else None
        doc = None
        if watch is not None:
            doc = watch.document()
            body = body if body is not None else doc.raw   # `body` conditions read it too
        matched = candidates.classify(req_facts, resp_facts, body, doc)
        count_json_skipped(edge, req_facts.json, doc)
        return await fire(edge, rt, matched, visit, request, client, page_url)

    # A JSON answer a rule reads is read before the headers go out (up to the watch's
    # limit; the rest streams): the events it fires are named in this response's
    # headers, for the page's script, and carried for the next page.
    early: list[bytes] = []
    if watch is not None and transform is None:
        try:
            while watch.active and (chunk := await up.read_chunk()):
                early.append(chunk)
                watch.feed(chunk)
        except UpstreamError as exc:
            log.warning("upstream body cut %s %s: %s", request.method, path, exc)
            edge.metrics.upstream_errors.labels("body").inc()
            return error_response(502, "The careers site could not be reached.",
                                  request.headers.get(hdrs.ACCEPT)), 0
        fired = await late_events()
        whole = up.complete

    # A whole page is transformed before answering, so it goes out with its length.
    document: bytes | None = None
    if whole and transform is not None:
        raw = await up.read_chunk()
        try:
            first = transform.feed_whole(raw)
        except CodecError as exc:
            # Undecodable: the page goes out as the upstream sent it, untouched.
            log.warning("page not transformed %s %s: %s", request.method, path, exc)
            edge.metrics.upstream_errors.labels("body").inc()
            edge.count_injection(transform, "undecodable")
            page, transform, document = passthrough(request, up.status, out_headers), None, raw
        else:
            document = first + transform.finish(await late_events())
            edge.count_injection(transform)
            edge.observe_page(page_url, up.status, transform)

    resp = ProxyResponse(status=up.status, reason=up.reason.decode("latin-1") or None,
                         headers=page.headers, hold_headers=whole)
    for cookie in visit.set_cookies:
        resp.headers.add(hdrs.SET_COOKIE, cookie)
    if fired or incoming.had_carry:
        # Events this response does not track itself: a header for the page's script,
        # a cookie for the next page; or the carry is spent (tracked here, or no
        # consent to keep it).
        handoff = plan_handoff(incoming, fired, status=up.status,
                               spends_carry=page.consumed_carry
                               or not visit.consent_state.storage,
                               script_request=from_script(request.headers),
                               secure=client.proto == "https")
        for cookie in handoff.set_cookies:
            resp.headers.add(hdrs.SET_COOKIE, cookie)
        if handoff.header and rt.pixels:
            value = events_header(handoff.header)
            if value:
                resp.headers[EVENTS_HEADER] = value
    if document is not None:
        resp.content_length = len(document)
    elif page.transform is None and up.content_length is not None and up.status >= 200 \
            and up.status not in (204, 304):
        resp.content_length = up.content_length
    await resp.prepare(request)

    # -- stream the body through
    held: list[bytes] = []      # with the whole body here, it all goes out with write_eof
    sent = 0
    if document is not None:
        held.append(document)
    elif up.has_body():
        try:
            for chunk in early:          # read for the rules already: sent first
                if whole:
                    held.append(chunk)
                else:
                    await resp.write(chunk)
                    sent += len(chunk)
            async for chunk in up:
                if watch is not None and watch.active:
                    watch.feed(chunk)
                if transform is not None:
                    chunk = transform.feed(chunk)
                    if not chunk:
                        continue
                if whole:
                    held.append(chunk)
                else:
                    await resp.write(chunk)
                    sent += len(chunk)
        except (UpstreamError, CodecError) as exc:
            # Cut mid-stream or undecodable: the visitor must not take a truncated page
            # for a whole one.
            log.warning("upstream body cut %s %s: %s", request.method, path, exc)
            edge.metrics.upstream_errors.labels("body").inc()
            edge.count_injection(transform, "undecodable" if isinstance(exc, CodecError)
                                 else "cut")
            if request.transport is not None:
                request.transport.abort()
            return resp, sent
        except ConnectionResetError:
            edge.count_injection(transform, "cut")
            return resp, sent                             # the visitor went away
        tail_events = await late_events()
        if transform is not None:
            held.append(transform.finish(tail_events))
            edge.count_injection(transform)
            edge.observe_page(page_url, up.status, transform)
    last = held[0] if len(held) == 1 else b"".join(held)
    # The document's last bytes go out with the chunked terminator: one send, not two.
    try:
        await resp.write_eof(last)
    except ConnectionResetError:
        return resp, sent                                # the visitor went away
    return resp, sent + len(last)
