"""The request path's stages, each in µs per request, measured in this process (no sockets).

What careers-edge does for one `GET /jobs/1` with side_by_side.py's rules (Meta pixel,
rules, link rewriting, access log), stage by stage, as the pipeline calls them: the
same page, upstream headers and request wrk sends (a Host header, no cookies: a new
visitor; "returning" adds the cookies a visitor has after the first page). Then the
whole request, `pipeline.serve_request` with the upstream answering at once and the
visitor's socket a sink (no request parsing, no system calls), beside the lean
proxy's handler in the same conditions: what is left after the stages is the
pipeline's own work and aiohttp's response. Each line is this process's CPU time,
best of 7 rounds. `bench_passthrough.py` prints this listing under its load figures;
`bench_page.py` builds on the same page and runtime.

    python benchmarks/stages.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lean_proxy
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy
from side_by_side import CSP, NONCE, PIXEL_ID, RETURNING, RULES, SNIPPET
from yarl import URL

from proxy.access_log import AccessLog
from proxy.config.load import load_config
from proxy.demo.jobs import job_by_id
from proxy.demo.pages import job_page
from proxy.detect.rules import RequestFacts, ResponseFacts
from proxy.edge import Edge
from proxy.http.headers import client_view, request_headers, response_headers
from proxy.http.upstream_response import UpstreamResponse
from proxy.metrics import Metrics
from proxy.page import PagePlan, plan_page
from proxy.pipeline import serve_request
from proxy.request_view import RequestView, attribute
from proxy.runtime import Runtime, compile_runtime
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.template import TemplateCache

ORIGIN = "http://127.0.0.1:8081"
PUBLIC_HOST = "127.0.0.1:8080"
PUBLIC = f"http://{PUBLIC_HOST}"
VISITOR = "0123456789abcdef0123456789abcdef"
RETURNING_COOKIES = RETURNING.removeprefix("Cookie: ")


NUMBER, REPEAT = 500, 7


def timed(name: str, fn: Callable[[], object], number: int = NUMBER) -> float:
    """Print and return CPU µs per call of `fn` (best of 7 rounds: this process's CPU
    time, which other processes on a shared machine disturb less than the clock)."""
    best = min(timeit.repeat(fn, number=number, repeat=REPEAT, timer=time.process_time)
               ) / number * 1e6
    print(f"{name:<50}{best:9.1f} µs")
    return best


@dataclass
class Setup:
    """The page, its upstream headers and the compiled rules, as the proxy has them."""

    page: bytes
    raw_response: list[tuple[bytes, bytes]]
    rt: Runtime


def setup() -> Setup:
    job = job_by_id("1")
    assert job is not None
    page = job_page(ORIGIN, job, NONCE).encode()
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RULES.format(origin=ORIGIN, tmp=tmp, pixel=PIXEL_ID))
        config = load_config(rules)
    rt = compile_runtime(config, b"k" * 32)
    raw = [(b"Server", b"nginx"), (b"Date", b"Sun, 22 Nov 2026 11:14:32 GMT"),
           (b"Content-Type", b"text/html"), (b"Content-Length", str(len(page)).encode()),
           (b"Connection", b"keep-alive"), (b"ETag", b'"6560-1234"'),
           (b"Content-Security-Policy", CSP.encode())]
    return Setup(page, raw, rt)


# Which sums a stage counts in: both visitors, one of them, or none (shown apart).
BOTH, NEW, RETURNING_ONLY, APART = "both", "new", "returning", ""
Stage = tuple[str, Callable[[], object], str]


def fresh(raw: list[tuple[bytes, bytes]]) -> Callable[[], list[tuple[bytes, bytes]]]:
    """A new copy of `raw` per call, as a parser hands over each request's or response's
    headers (bytes whose hashes are not computed yet)."""
    copies = iter([[(bytes(bytearray(n)), bytes(bytearray(v))) for n, v in raw]
                   for _ in range(NUMBER * REPEAT + 1)])
    return lambda: next(copies)


def stages(s: Setup) -> list[Stage]:
    """(name, one request's work for that stage, which sums it counts in), in the
    order the pipeline runs them."""
    rt, page = s.rt, s.page
    raw_request = [(b"Host", PUBLIC_HOST.encode())]
    returning_request = [*raw_request, (b"Cookie", RETURNING_COOKIES.encode())]
    client = client_view(raw_request, "127.0.0.1", PUBLIC_HOST, "http", rt.trusted, rt.hosts)
    out = response_headers(s.raw_response, rt.rewriter, PUBLIC, PUBLIC_HOST)
    upstream_headers = fresh(s.raw_response)
    plans, templates = HeaderPlans(), TemplateCache()
    metrics = Metrics()
    edge = Edge(runtime=rt, transport=None, metrics=metrics,  # type: ignore[arg-type]
                outbox=None, journeys=None,                  # type: ignore[arg-type]
                access_log=AccessLog(open("/dev/null", "wb"), redactor=lambda: rt.redactor))
    request = make_mocked_request("GET", "/jobs/1", headers={"Host": PUBLIC_HOST})
    response = web.StreamResponse(status=200)
    response.content_length = len(page)

    def attribution(cookies: str | None) -> Callable[[], object]:
        return lambda: rt.attribution.on_request(
            raw_query="", cookie_header=cookies, host=PUBLIC_HOST, secure=False, gpc=False,
            referer=None)

    def rules_apply() -> object:
        candidates = rt.rules.candidates("GET", "/jobs/1/apply", "")
        return candidates.classify(RequestFacts("GET", "/jobs/1/apply", ""),
                                   ResponseFacts(200, {}, None), page)

    view = RequestView("GET", "/jobs/1", "/jobs/1", "", None, None, None, None, False, "",
                       False, client, "0" * 16, PUBLIC)
    visit = attribute(rt.attribution, view)

    def page_plan() -> PagePlan:
        """`page.plan_page` for this page: pixels, header plan, markup, the transform."""
        return plan_page(rt, view, 200, out, visit, (), wants_body=False, feed_wants=False,
                         header_plans=plans, templates=templates)

    # One plan's transform, filled again per call: a template leaves nothing in it to
    # spend, and its snippets stay as warm as a page's own plan leaves them.
    transform = page_plan().transform
    assert transform is not None

    def template_fill() -> bytes:
        """The page's template (kept by its bytes) filled with this response's snippets."""
        fresh = bytes(bytearray(page))      # a new bytes object per response, as read
        first = transform.feed_whole(fresh)
        assert not first
        return transform.finish(())

    for _ in range(3):      # kept the second time it is seen
        template_fill()
    started = time.monotonic()

    def metrics_only() -> None:
        """What every proxied response counts (status, durations)."""
        metrics.upstream_seconds.observe(0.001)
        edge.count_code(200)
        metrics.request_seconds.observe(0.002)

    def finish() -> None:
        """`Edge.finish`: the response counted, its access-log record kept."""
        edge.finish(request, response, started, "127.0.0.1", 0.001, "0" * 32, len(page))
        edge.access_log.records.clear()

    edge.finish(request, response, started, "127.0.0.1", 0.001, "0" * 32, len(page))
    record = edge.access_log.records.pop()

    return [
        ("client_view", lambda: client_view(raw_request, "127.0.0.1", PUBLIC_HOST, "http",
                                            rt.trusted, rt.hosts), BOTH),
        ("attribution, new visitor", attribution(None), NEW),
        ("attribution, returning visitor", attribution(RETURNING_COOKIES), RETURNING_ONLY),
        ("rules: candidates (GET /jobs/1, none)",
         lambda: rt.rules.candidates("GET", "/jobs/1", ""), BOTH),
        ("rules: candidates + classify (GET /jobs/1/apply)", rules_apply, APART),
        ("request_headers, new visitor",
         lambda: request_headers(raw_request, client, b"1" * 32), NEW),
        ("request_headers, returning visitor",
         lambda: request_headers(returning_request, client, b"1" * 32), RETURNING_ONLY),
        ("response_headers (7 headers)",
         lambda: response_headers(upstream_headers(), rt.rewriter, PUBLIC, PUBLIC_HOST), BOTH),
        ("page plan: pixels, header plan, markup", page_plan, BOTH),
        ("template fill (the job page, links rewritten)", template_fill, BOTH),
        ("metrics (code, two histograms; in Edge.finish too)", metrics_only, APART),
        ("Edge.finish: counting, the access-log record", finish, BOTH),
        ("access log: the JSON line (background task)", lambda: edge.access_log.lines([record]),
         BOTH),
    ]


class _Sink(asyncio.Transport):
    """A visitor's connection that takes every byte and keeps none."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)

    def writelines(self, chunks: object) -> None:
        for c in chunks:        # type: ignore[attr-defined]
            self.sent += len(c)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default


class _CannedPool:
    """The upstream pool's `request`, answering at once with the page as it came."""

    def __init__(self, page: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.page, self.headers = page, headers
        self.loop = asyncio.get_running_loop()

    async def request(self, *args: object, **kwargs: object) -> UpstreamResponse:
        up = UpstreamResponse(self, 200, b"OK", (1, 1),  # type: ignore[arg-type]
                              list(fresh_once(self.headers)), False)
        up._feed(bytes(bytearray(self.page)))
        up._finish()
        return up

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def abort(self) -> None: ...


def fresh_once(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(bytes(bytearray(n)), bytes(bytearray(v))) for n, v in raw]


class _Protocol(BaseProtocol):
    """The visitor's connection as aiohttp's request and writer read it."""

    ssl_context = None
    peername = ("127.0.0.1", 40000)
    sockname = ("127.0.0.1", 8080)


class _NoJourneys:
    def record(self, visit: object, now: float | None = None) -> None: ...


async def _whole_requests(s: Setup, cookies: str | None, n: int, lean: bool = False) -> float:
    """µs per `pipeline.serve_request` (best of 7 rounds of `n`): the whole request path
    in this process, the upstream answering at once and the visitor's socket a sink
    (aiohttp's request parsing and the sockets left out). `lean`: the lean proxy's
    handler instead, its response prepared and sent as aiohttp's server does."""
    rt = s.rt
    pool = _CannedPool(s.page, s.raw_response)
    edge = Edge(runtime=rt, transport=pool,  # type: ignore[arg-type]
                metrics=Metrics(), outbox=None, journeys=_NoJourneys(),  # type: ignore[arg-type]
                access_log=AccessLog(open("/dev/null", "wb"), redactor=lambda: rt.redactor))
    lean_handler = lean_proxy.handler(pool, SNIPPET.encode())  # type: ignore[arg-type]
    headers = {"Host": PUBLIC_HOST, **({"Cookie": cookies} if cookies else {})}
    raw = tuple((k.encode(), v.encode()) for k, v in headers.items())
    url = URL.build(path="/jobs/1", encoded=True)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    best = float("inf")
    for _ in range(REPEAT):
        started = time.process_time()
        for _ in range(n):
            transport = _Sink()
            protocol = _Protocol(loop)
            protocol.connection_made(transport)
            request = web.BaseRequest(RawRequestMessage(
                "GET", "/jobs/1", HttpVersion11, CIMultiDictProxy(CIMultiDict(headers)),
                raw, False, None, False, False, url), EMPTY_PAYLOAD, protocol,
                StreamWriter(protocol, loop), task, loop)
            if lean:
                response = await lean_handler(request)
                await response.prepare(request)
                await response.write_eof()
            else:
                await serve_request(edge, request)
        best = min(best, (time.process_time() - started) / n * 1e6)
        if edge.access_log.records:
            edge.access_log.flush()
    return best


def print_stages(s: Setup | None = None) -> None:
    print("the request path in this process, CPU µs per request (best of 7 rounds)")
    s = s or setup()
    sums = {NEW: 0.0, RETURNING_ONLY: 0.0}
    for name, fn, counted in stages(s):
        took = timed(name, fn)
        for who in sums:
            if counted in (BOTH, who):
                sums[who] += took
    print(f"{'sum for a new visitor (GET /jobs/1)':<50}{sums[NEW]:9.1f} µs")
    print(f"{'sum for a returning visitor':<50}{sums[RETURNING_ONLY]:9.1f} µs")
    print("whole requests in this process (no request parsing, no sockets)")
    whole = {}
    for who, cookies, lean in (("careers-edge, new visitor", None, False),
                               ("careers-edge, returning visitor", RETURNING_COOKIES, False),
                               ("lean proxy", None, True)):
        whole[who] = asyncio.run(_whole_requests(s, cookies, NUMBER, lean))
        print(f"{who:<50}{whole[who]:9.1f} µs")
    lean_us = whole["lean proxy"]
    print(f"{'careers-edge, new visitor × lean proxy':<50}"
          f"{whole['careers-edge, new visitor'] / lean_us:9.2f}")
    print(f"{'careers-edge, new visitor − the stages above':<50}"
          f"{whole['careers-edge, new visitor'] - sums[NEW]:9.1f} µs")


if __name__ == "__main__":
    print_stages()
    sys.exit(0)
