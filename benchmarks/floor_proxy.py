"""The stages' floor: the lean proxy plus careers-edge's own stages, and no pipeline.

`lean_proxy.py` (aiohttp's `web.Server`, careers-edge's `UpstreamPool`, a
`web.Response`) with, in its one handler, the functions careers-edge's stages call,
in the pipeline's order and with the request's own values: `client_view`,
`attribute`, the rules' `candidates`, `request_headers` (sent upstream),
`response_headers`, `plan_page` and the page's transform (the pixel injected, links
rewritten), `plan_head` (the planned headers and Set-Cookies), the counts a request
makes and its access-log record (JSON lines to /dev/null, written by a background
task). What careers-edge spends beyond this is its pipeline's glue: `Edge`,
`serve_request`, `Outgoing`, `ProxyResponse`. `bench_passthrough.py` measures it as
"stages floor".

Stand-ins for the pipeline's objects, the smallest that do the same work here:
the target is split on "?" (no `origin_form` check, no refusals or routes); the
`RequestView` is read from the request's headers as `read_request` does; the metrics
are counted on a `Metrics` as `Edge.count_code`, `Edge.count_visit` (no journeys
store: a new visitor without click ids records nothing there) and `count_injection`
do; the record is `Edge.finish`'s. The page is read whole before it is transformed
(the pipeline does the same when the body came with the head, as a small page does
on loopback; a page still arriving would stream through it). Rules that read the
page are not checked (GET /jobs/1 has no candidate rule).

    python benchmarks/floor_proxy.py ORIGIN_URL PORT RULES_FILE
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from aiohttp import HttpVersion10, HttpVersion11, hdrs, web
from multidict import CIMultiDict

from proxy.access_log import AccessLog, RequestIds
from proxy.config.load import load_config
from proxy.handoff import SEC_FETCH_DEST, Incoming
from proxy.http.headers import client_view, request_headers, response_headers
from proxy.http.transport import UpstreamPool
from proxy.metrics import Increment, Metrics
from proxy.page import plan_page
from proxy.request_view import RequestView, attribute
from proxy.response_head import plan_head
from proxy.runtime import Runtime, compile_runtime
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.template import TemplateCache

Handler = Callable[[web.BaseRequest], Awaitable[web.Response]]
KEY = b"k" * 32             # the cookie-signing key: any fixed one will do here
_PROTOCOLS = {HttpVersion11: "HTTP/1.1", HttpVersion10: "HTTP/1.0"}


def runtime(rules: Path) -> Runtime:
    """The rules file compiled as the proxy compiles it (as `stages.setup` does)."""
    return compile_runtime(load_config(rules), KEY)


def handler(pool: UpstreamPool, rt: Runtime, metrics: Metrics,
            access_log: AccessLog) -> Handler:
    """The floor's whole request path: the stages, called straight."""
    header_plans, templates, request_ids = HeaderPlans(), TemplateCache(), RequestIds()
    codes: dict[int, Increment] = {}
    pixels = bool(rt.pixels.pixels)

    async def handle(request: web.BaseRequest) -> web.Response:
        started = time.monotonic()
        raw, h = request.raw_headers, request.headers
        client = client_view(raw, request.remote, h.get(hdrs.HOST, ""), request.scheme,
                             rt.trusted, rt.hosts)
        target = request.raw_path
        path, _, query = target.partition("?")
        rid = request_ids()
        view = RequestView(
            request.method, target, path, query, h.get(hdrs.COOKIE), h.get(hdrs.ACCEPT),
            h.get(hdrs.REFERER), h.get(hdrs.USER_AGENT), h.get("Sec-GPC", "").strip() == "1",
            h.get(hdrs.IF_NONE_MATCH, ""), h.get(SEC_FETCH_DEST) == "empty", client, rid,
            rt.public_origin or f"{client.proto}://{client.host}")
        visit = attribute(rt.attribution, view)
        for param in visit.new_clicks:
            metrics.clicks_captured.labels(param).inc()
        rt.rules.candidates(view.method, path, query)
        headers = request_headers(raw, client, rid.encode())
        t0 = time.monotonic()
        up = await pool.request(view.method, target.encode("utf-8", "surrogateescape"),
                                headers, header_timeout=rt.timeout,
                                pool_timeout=rt.pool_timeout)
        try:
            upstream = time.monotonic() - t0
            metrics.upstream_seconds.observe(upstream)
            out = response_headers(up.headers, rt.rewriter, view.public_origin, client.host)
            incoming = Incoming.read(view.cookie)
            if not visit.consent:
                incoming = incoming.dropped()
            page = plan_page(rt, view, up.status, out, visit, incoming.pending,
                             wants_body=False, feed_wants=False, header_plans=header_plans,
                             templates=templates)
            body = await up.read()
        finally:
            up.release()
        if page.links_kept:
            metrics.links_kept.inc()
        transform = page.transform
        if transform is not None:
            body = transform.feed_whole(body) + transform.finish()
            if transform.has_snippets:
                if transform.injected:
                    metrics.injections.inc()
                else:
                    metrics.injections_skipped.labels("charset").inc()
        head = plan_head(view, visit, up, page, incoming, (), pixels=pixels,
                         has_body=up.has_body(),
                         document=len(body) if transform is not None else None, hold=True)
        out_headers = CIMultiDict(head.headers)
        for cookie in head.set_cookies:
            out_headers.add(hdrs.SET_COOKIE, cookie)
        resp = web.Response(body=body, status=head.status, reason=head.reason,
                            headers=out_headers)
        counter = codes.get(head.status)
        if counter is None:
            counter = codes[head.status] = metrics.requests.labels(str(head.status))
        counter.inc()
        seconds = time.monotonic() - started
        metrics.request_seconds.observe(seconds)
        v = request.version
        access_log.add((
            time.time(), seconds, request.method, target,
            _PROTOCOLS.get(v) or f"HTTP/{v.major}.{v.minor}", head.status, len(body),
            upstream, rid, client.ip, h.get(hdrs.USER_AGENT, ""), h.get(hdrs.REFERER, "")))
        return resp
    return handle


async def serve(origin: str, port: int, rules: Path) -> None:
    rt = runtime(rules)
    access_log = AccessLog(open("/dev/null", "wb"), redactor=lambda: rt.redactor)
    flushing = asyncio.create_task(access_log.run())
    runner = web.ServerRunner(web.Server(handler(UpstreamPool(origin), rt, Metrics(),
                                                 access_log), access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        flushing.cancel()


def main() -> None:
    origin, port, rules = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    uvloop.run(serve(origin, port, rules))


if __name__ == "__main__":
    main()
