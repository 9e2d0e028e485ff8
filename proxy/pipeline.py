"""The request path, top to bottom.

    request in → attribution (click ids, cookies, consent)
               → upstream (transport)
               → classify (rules → events) → outbox (durable)
               → transform (inject, rewrite links, CSP)
               → respond (streaming)

Each stage is a call into its own module; this one only wires them, and is the only
one on the way that touches aiohttp's request and response or `Edge`. The request is
read once into a `RequestView`; from there the planners are functions of values:
`attribute` (the visit), `check_rules` and `RuleCheck.events` (events to fire),
`plan_page` (pixels, CSP, transform), `plan_head` (status, headers, Set-Cookies, the
length rule, the handoff). `respond` submits the events, prepares, streams, finishes.

Nothing a stage does for tracking may break the visitor's page: a failing injection
or enqueue is logged and the page is served as the upstream sent it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from aiohttp import hdrs, web

from proxy.access_log import REQUEST_ID_HEADER, trusted_request_id
from proxy.attribution.visit import Visit
from proxy.detect.json_body import JsonCollector
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.rules import Candidates
from proxy.edge import EDGE, Edge
from proxy.firing import Planned, RuleCheck, check_rules, submit
from proxy.handoff import SEC_FETCH_DEST, Incoming
from proxy.hosts import MISDIRECTED
from proxy.http.body import (
    NO_BODY,
    BodyMalformed,
    BodyRefused,
    RequestSniffer,
    request_body,
)
from proxy.http.errors import error_response
from proxy.http.headers import (
    EVENTS_HEADER,
    ClientView,
    OriginRewriter,
    client_view,
    request_headers,
    response_headers,
    via_loop,
)
from proxy.http.response import Answer, ProxyResponse, written
from proxy.http.route_table import PathEscapes, UpstreamRoute
from proxy.http.server import HTTP_VERSIONS, client_version, log_malformed
from proxy.http.target import BadTarget, origin_form, split_target
from proxy.http.upstream_errors import PoolTimeout, UpstreamError, UpstreamTimeout
from proxy.http.upstream_response import UpstreamResponse
from proxy.http.websocket import is_websocket, relay_websocket
from proxy.metrics import Metrics
from proxy.page import PagePlan, PageTransform, passthrough, plan_page
from proxy.pixels import BrowserEvent
from proxy.request_view import RequestView, attribute
from proxy.response_head import ResponseHead, plan_head
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
    """The application's catch-all route (under a plain `web.AppRunner`)."""
    resp = await serve_request(request.app[EDGE], request)
    if isinstance(resp, ProxyResponse):     # ours is written here, not by aiohttp
        return await written(request, resp)
    return resp


async def serve_request(edge: Edge, request: web.BaseRequest) -> Answer:
    rt: Runtime = edge.runtime
    started = time.monotonic()
    checked = checked_target(request)
    if not isinstance(checked, tuple):      # a tuple: not an ABC check, on every request
        return edge.finish(request, checked, started)
    target, host = checked
    own = target.startswith(rt.prefix_slash) or target == rt.prefix
    if own and edge.endpoints.unchecked_host(target):
        return edge.finish(request, await edge.endpoints(request, target), started,
                           quiet=edge.access_log.quiet(target, rt.prefix))

    # -- who the visitor is, and whether the host asked for is one of ours
    client = client_view(request.raw_headers, request.remote, host, request.scheme,
                         rt.trusted, rt.hosts)
    if client.refused:
        return edge.finish(request, host_refused(request, client.refused), started, client.ip)
    if own:
        if edge.endpoints.admin_only(target):     # the operators' door is elsewhere
            return edge.finish(request, not_found(request), started, client.ip, count=False)
        return edge.finish(request, await edge.endpoints(request, target), started, client.ip,
                           quiet=edge.access_log.quiet(target, rt.prefix))
    admitted = admit(edge, rt, request, target, client)
    if not isinstance(admitted, tuple):
        return edge.finish(request, admitted, started, client.ip)
    view, route = admitted
    if is_websocket(request):
        return await websocket(edge, request, view, route, started)
    visit = attribute(rt.attribution, view)
    edge.count_visit(visit)
    return await forward(edge, rt, request, view, visit, route, started)


def checked_target(request: web.BaseRequest) -> tuple[str, str] | web.Response:
    """The request line and Host, checked before anything is forwarded: the
    origin-form target and the Host, or the answer instead (505, 400)."""
    if client_version(request) not in HTTP_VERSIONS:
        version = client_version(request)
        log.warning("505 for an HTTP/%d.%d request from %s", *version, request.remote)
        return error_response(
            505, "This site speaks HTTP/1.1 and HTTP/1.0.", request.headers.get(hdrs.ACCEPT),
            headers={"Connection": "close"})
    host_values = request.headers.getall(hdrs.HOST, [])
    if len(host_values) != 1 or not host_values[0]:
        return bad_request(request, "exactly one Host header is required")
    try:
        return origin_form(request.raw_path, host_values[0]), host_values[0]
    except BadTarget as exc:
        return bad_request(request, str(exc))


def refusal(rt: Runtime, request: web.BaseRequest, path: str) -> web.Response | None:
    """The answer to a request this site does not forward, if it is one."""
    if request.method in REFUSED_METHODS:
        return error_response(405, "This method is not served here.",
                              request.headers.get(hdrs.ACCEPT), headers={hdrs.ALLOW: ALLOW})
    if via_loop(request.raw_headers):
        log.warning("508: the request came back through this proxy (its upstream points "
                    "at the proxy itself?)")
        return error_response(508, "The request came back to this proxy.",
                              request.headers.get(hdrs.ACCEPT))
    if rt.allowed is not None and path not in rt.allowed:
        return not_found(request, "There is no such page on this site.")
    return None


def routed(rt: Runtime, request: web.BaseRequest, path: str, query: str
           ) -> tuple[UpstreamRoute | None, web.Response | None]:
    """`[[routes]]`: the upstream that serves this prefix (None: the main one), or the
    answer instead (a path escaping its route, a missing trailing slash)."""
    try:
        route = rt.routes.match(path)
    except PathEscapes as exc:
        return None, error_response(400, str(exc), request.headers.get(hdrs.ACCEPT))
    slashed = rt.routes.slash_redirect(path) if route is None else None
    if slashed is not None:
        return None, web.Response(status=301, headers={
            hdrs.LOCATION: slashed + ("?" + query if query else "")})
    return route, None


def admit(edge: Edge, rt: Runtime, request: web.BaseRequest, target: str,
          client: ClientView) -> tuple[RequestView, UpstreamRoute | None] | web.Response:
    """A request for the careers site from a visitor on one of our hosts, as the
    planners read it, and the upstream that serves it (None: the main one); or the
    answer instead."""
    path, query = split_target(target)
    refused = refusal(rt, request, path)
    if refused is not None:
        return refused
    route = None
    if rt.routes:               # [[routes]]: another upstream serves this prefix
        route, answer = routed(rt, request, path, query)
        if answer is not None:
            return answer
    # A proxy in front may have named the request already; a visitor may not.
    rid = (request.remote in rt.trusted
           and trusted_request_id(request.headers.get(REQUEST_ID_HEADER))) \
        or edge.request_ids()
    public_origin = rt.public_origin or f"{client.proto}://{client.host}"
    return read_request(request, target, path, query, client, rid, public_origin), route


async def websocket(edge: Edge, request: web.BaseRequest, view: RequestView,
                    route: UpstreamRoute | None, started: float) -> Answer:
    headers = request_headers(request.raw_headers, view.client, view.request_id.encode())
    if route is not None:
        ws = await relay_websocket(request, edge.ws_session(), route.origin,
                                   route.target(view.target), headers)
    else:
        ws = await relay_websocket(request, edge.ws_session(), edge.runtime.upstream_origin,
                                   view.target, headers)
    return edge.finish(request, ws, started, view.client.ip, None, view.request_id)


def upstream_headers(request: web.BaseRequest, view: RequestView) -> list[tuple[bytes, bytes]]:
    headers = request_headers(request.raw_headers, view.client, view.request_id.encode())
    if "W/" in view.if_none_match:
        headers = [(n, unweaken_if_none_match(v.decode("latin-1")).encode("latin-1"))
                   if n.lower() == b"if-none-match" else (n, v) for n, v in headers]
    return headers


def upstream_failed(edge: Edge, rt: Runtime, view: RequestView,
                    exc: UpstreamError) -> web.Response:
    """503 for no free connection in time, 504 for no answer in time, else 502."""
    if isinstance(exc, PoolTimeout):
        edge.metrics.upstream_errors.labels("pool_timeout").inc()
        log.warning("upstream %s %s: %s", view.method, view.path, exc)
        return error_response(503, "The careers site is busy.", view.accept,
                              headers={"Retry-After": str(math.ceil(rt.pool_timeout))})
    if isinstance(exc, UpstreamTimeout):
        edge.metrics.upstream_errors.labels("timeout").inc()
        return error_response(504, "No answer from the careers site in time.", view.accept)
    edge.metrics.upstream_errors.labels(type(exc).__name__).inc()
    log.warning("upstream %s %s: %s", view.method, view.path, exc)
    return error_response(502, "The careers site could not be reached.", view.accept)


async def forward(edge: Edge, rt: Runtime, request: web.BaseRequest, view: RequestView,
                  visit: Visit, route: UpstreamRoute | None,
                  started: float) -> Answer:
    """Upstream and back: the request's body, the upstream's answer, the response."""
    ip, rid = view.client.ip, view.request_id
    target = view.target
    if visit.upstream_query is not None:    # click ids the upstream is not to see
        target = view.path + ("?" + visit.upstream_query if visit.upstream_query else "")
    candidates = rt.rules.candidates(view.method, view.path, view.query)
    headers = upstream_headers(request, view)
    transport, rewriter = edge.transport, rt.rewriter
    if route is not None:
        transport, rewriter = edge.upstreams.pool(route.origin), route.rewriter
        target = route.target(target)
    body, sniffer = NO_BODY, None
    if request.body_exists:
        try:
            # Buffered (the default): the whole body is here before a connection is taken.
            body, sniffer = await request_body(request, candidates.form_fields, rt.body,
                                               json=candidates.request_json)
        except BodyRefused as exc:
            return edge.finish(request, body_refused(request, exc), started, ip, None, rid)
    t0 = time.monotonic()
    try:
        up = await transport.request(
            view.method, target.encode("utf-8", "surrogateescape"), headers, body.data,
            body_length=body.length, header_timeout=rt.timeout, pool_timeout=rt.pool_timeout)
    except BodyRefused as exc:          # a streamed body, part of it already upstream
        return edge.finish(request, body_refused(request, exc), started, ip,
                           time.monotonic() - t0, rid)
    except UpstreamError as exc:        # no time to the upstream when none was free
        return edge.finish(request, upstream_failed(edge, rt, view, exc), started, ip,
                           None if isinstance(exc, PoolTimeout) else time.monotonic() - t0,
                           rid)
    finally:
        body.close()
    upstream_seconds = time.monotonic() - t0
    edge.metrics.upstream_seconds.observe(upstream_seconds)

    try:
        resp, sent = await respond(request, Outgoing(edge, rt, view, visit, up, candidates,
                                                     sniffer, rewriter))
    finally:
        up.release()
    return edge.finish(request, resp, started, ip, upstream_seconds, rid, sent)


def read_request(request: web.BaseRequest, target: str, path: str, query: str,
                 client: ClientView, request_id: str, public_origin: str) -> RequestView:
    """The request as the planners read it: the one place its headers are looked up."""
    h = request.headers
    return RequestView(
        request.method, target, path, query, h.get(hdrs.COOKIE), h.get(hdrs.ACCEPT),
        h.get(hdrs.REFERER), h.get(hdrs.USER_AGENT), h.get("Sec-GPC", "").strip() == "1",
        h.get(hdrs.IF_NONE_MATCH, ""), h.get(SEC_FETCH_DEST) == "empty",   # from_script
        client, request_id, public_origin)


def count_injection(metrics: Metrics, transform: PageTransform | None,
                    failed: str | None = None) -> None:
    """Count a page that was to receive pixels: injected, or skipped and why
    (`failed`: what ended the transform early, if anything did)."""
    if transform is None or not transform.has_snippets:
        return
    if transform.injected:
        metrics.injections.inc()
    else:
        metrics.injections_skipped.labels(failed or "charset").inc()


async def respond(request: web.BaseRequest, out: Outgoing) -> tuple[Answer, int]:
    """The upstream's answer streamed to the visitor; with the body bytes sent."""
    if out.early:                       # events decided on the head: durable before we answer
        out.fired = await out.submit(out.early)
    out.plan_page()
    if out.watch is not None and out.transform is None and not await out.read_json():
        return error_response(502, "The careers site could not be reached.",
                              out.view.accept), 0
    if out.whole and out.transform is not None:
        await out.transform_whole()
    document = out.document
    resp = response(plan_head(out.view, out.visit, out.up, out.page, out.incoming, out.fired,
                              pixels=bool(out.rt.pixels.pixels), has_body=out.has_body,
                              document=None if document is None else len(document),
                              hold=out.whole))
    await resp.prepare(request)
    if document is not None:            # head and the whole page: one send
        return resp, await finish(resp, [document])
    held = await out.stream(resp, request)
    if held is None:                    # cut, or the visitor went away
        return resp, out.sent
    return resp, out.sent + await finish(resp, held)


def response(head: ResponseHead) -> ProxyResponse:
    """The planned head as the response the pipeline writes."""
    headers = head.headers
    if head.events_header:
        headers = [*headers, (EVENTS_HEADER, head.events_header)]
    return ProxyResponse(status=head.status, reason=head.reason, headers=headers,
                         set_cookies=head.set_cookies, content_length=head.content_length,
                         hold_headers=head.hold)


async def finish(resp: ProxyResponse, held: list[bytes]) -> int:
    """The held bytes go out with the chunked terminator (one send, not two); how many."""
    last = held[0] if len(held) == 1 else b"".join(held)
    try:
        await resp.write_eof(last)
    except ConnectionResetError:
        return 0                        # the visitor went away
    return len(last)


class Outgoing:
    """One upstream answer on its way to the visitor: its plans, and what the body
    stages share (the page transform, the JSON watch, bytes read ahead of the head)."""

    __slots__ = ("edge", "rt", "view", "visit", "up", "check", "out_headers", "incoming",
                 "early", "fired", "page", "transform", "watch", "ahead", "document",
                 "whole", "has_body", "classified", "sent")
    page: PagePlan                      # set by plan_page, before anything reads it

    def __init__(self, edge: Edge, rt: Runtime, view: RequestView, visit: Visit,
                 up: UpstreamResponse, candidates: Candidates,
                 sniffer: RequestSniffer | None, rewriter: OriginRewriter) -> None:
        self.edge, self.rt, self.view, self.visit, self.up = edge, rt, view, visit, up
        self.has_body = has_body = up.has_body()
        self.out_headers = response_headers(up.headers, rewriter, view.public_origin,
                                            view.client.host)
        incoming = Incoming.read(view.cookie)
        # A carried event is neither tracked nor carried on without consent.
        self.incoming = incoming if visit.consent else incoming.dropped()
        self.check: RuleCheck | None = None
        self.watch: JsonCollector | None = None
        self.early: Sequence[Planned] = ()
        self.classified = True          # the rules run once, wherever first
        if candidates:                  # most pages have no candidate rule
            self.check_rules(candidates, sniffer, rewriter)
        self.fired: Sequence[BrowserEvent] = ()
        self.transform: PageTransform | None = None
        self.ahead: list[bytes] = []    # read before the head went out (for the rules)
        self.document: bytes | None = None
        # The whole body already here (a small page, a 304): head and body leave in one send.
        self.whole = not has_body or up.complete
        self.sent = 0

    def check_rules(self, candidates: Candidates, sniffer: RequestSniffer | None,
                    rewriter: OriginRewriter) -> None:
        """The facts the rules read; the events decided on the head; the JSON watch."""
        up = self.up
        self.check = check = check_rules(
            candidates, self.view, up.status, up.headers, self.out_headers, rewriter,
            has_body=self.has_body, form=sniffer.fields if sniffer else {},
            json=sniffer.json if sniffer else None)
        self.classified = check.early
        if check.early:
            self.early = check.events(self.visit, self.view, self.rt.sinks)
            self.count_skipped(check, None)
        elif check.wants_json:
            # A JSON answer is watched as it streams past, unchanged; a bounded copy is kept.
            self.watch = JsonCollector.for_response(up.headers, up.content_length)

    def count_skipped(self, check: RuleCheck, doc: JsonDoc | None) -> None:
        for side, why in check.json_skipped(doc):
            self.edge.metrics.rule_json_skipped.labels(side, why).inc()

    async def submit(self, planned: Sequence[Planned]) -> list[BrowserEvent]:
        e = self.edge
        return await submit(planned, self.visit, e.outbox, e.metrics, e.live)

    def plan_page(self) -> None:
        """Pixels, CSP, transform (or plain pass-through)."""
        e, view, status, check = self.edge, self.view, self.up.status, self.check
        self.page = page = plan_page(
            self.rt, view, status, self.out_headers, self.visit,
            [*self.incoming.pending, *self.fired],
            wants_body=check is not None and check.wants_html,
            feed_wants=e.feed is not None and status == 200
            and e.feed_wants(view.public_origin + view.path),
            header_plans=e.header_plans, templates=e.templates)
        if page.links_kept:
            e.metrics.links_kept.inc()
        self.transform = page.transform

    async def late_events(self) -> list[BrowserEvent]:
        """The rules that read the body, once it was seen."""
        check = self.check
        if self.classified or check is None:
            return []
        self.classified = True
        body = self.transform.observed() if self.transform is not None else None
        doc = None
        if self.watch is not None:
            doc = self.watch.document()
            body = body if body is not None else doc.raw   # `body` conditions read it too
        planned = check.events(self.visit, self.view, self.rt.sinks, body, doc)
        self.count_skipped(check, doc)
        return await self.submit(planned) if planned else []

    async def read_json(self) -> bool:
        """A JSON answer a rule reads is read before the head goes out (up to the watch's
        limit; the rest streams): the events it fires are named in this response's
        headers, for the page's script, and carried for the next page. False: cut."""
        up, watch = self.up, self.watch
        assert watch is not None
        try:
            while watch.active and (chunk := await up.read_chunk()):
                self.ahead.append(chunk)
                watch.feed(chunk)
        except UpstreamError as exc:
            self.body_error(exc)
            return False
        self.fired = await self.late_events()
        self.whole = up.complete
        return True

    async def transform_whole(self) -> None:
        """A whole page is transformed before answering, so it goes out with its length."""
        transform, up = self.transform, self.up
        assert transform is not None
        raw = await up.read_chunk()
        try:
            first = transform.feed_whole(raw)
        except CodecError as exc:
            # Undecodable: the page goes out as the upstream sent it, untouched.
            log.warning("page not transformed %s %s: %s", self.view.method, self.view.path,
                        exc)
            self.edge.metrics.upstream_errors.labels("body").inc()
            count_injection(self.edge.metrics, transform, "undecodable")
            self.page = passthrough(self.view, up.status, self.out_headers)
            self.transform, self.document = None, raw
            return
        self.document = first + transform.finish(
            () if self.classified else await self.late_events())
        self.done(transform)

    async def stream(self, resp: ProxyResponse,
                     request: web.BaseRequest) -> list[bytes] | None:
        """The body through the transform to the visitor (a page transformed whole
        was sent by `respond`); what is left for `finish` (with the whole body here,
        all of it), or None when the stream ended early."""
        held: list[bytes] = []
        up, transform = self.up, self.transform
        if not self.has_body:
            return held
        if self.whole and transform is None and self.watch is None and self.classified:
            # Passing through, the whole body here: one read, and out with the head.
            held.append(await up.read_chunk())
            return held
        try:
            await self.pipe(resp, held)
        except (UpstreamError, CodecError) as exc:
            # Cut mid-stream or undecodable: the visitor must not take a truncated page
            # for a whole one.
            self.body_error(exc)
            count_injection(self.edge.metrics, transform,
                            "undecodable" if isinstance(exc, CodecError) else "cut")
            transport = request.transport
            if transport is not None:
                transport.abort()
            return None
        except ConnectionResetError:
            count_injection(self.edge.metrics, transform, "cut")
            return None
        tail_events = await self.late_events()
        if transform is not None:
            held.append(transform.finish(tail_events))
            self.done(transform)
        return held

    async def pipe(self, resp: ProxyResponse, held: list[bytes]) -> None:
        """Each body chunk past the JSON watch and through the transform: into `held`
        when the whole body is here, else written as it comes."""
        transform, watch, whole = self.transform, self.watch, self.whole
        for chunk in self.ahead:          # read for the rules already: sent first
            if whole:
                held.append(chunk)
            else:
                await resp.write(chunk)
                self.sent += len(chunk)
        async for chunk in self.up:
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
                self.sent += len(chunk)

    def body_error(self, exc: Exception) -> None:
        log.warning("upstream body cut %s %s: %s", self.view.method, self.view.path, exc)
        self.edge.metrics.upstream_errors.labels("body").inc()

    def done(self, transform: PageTransform) -> None:
        """A page transformed to its end: counted, and shown to the job feed."""
        e = self.edge
        count_injection(e.metrics, transform)
        if e.feed is not None:          # the page's URL is built only for a feed to see
            e.observe_page(self.view.page_url, self.up.status, transform)
