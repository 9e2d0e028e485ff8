"""The access log's cost per request: `Edge.finish` on the request path plus the
background flush that formats, redacts and writes the lines (to memory here).

    python benchmarks/bench_access_log.py [--requests 200000] [--rounds 5]

Prints µs per request (best round) for `access = "off"`, `json` and `combined`, on a
plain job page and on a landing URL with click ids and an e-mail address (the
redactor's slow path). `log cost` is the difference to `off`. End to end, through a
real proxy process, see bench_passthrough.py's "edge + access log" row.
"""

from __future__ import annotations

import argparse
import io
import time

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.access_log import AccessLog
from proxy.edge import Edge
from proxy.metrics import Metrics
from proxy.redact import Redactor

PARAMS = ("tlr_sid", "fbclid", "gclid", "ccuid")
PLAIN = "/jobs/1234/nurse-berlin"
LANDING = ("/jobs/1234?tlr_sid=0b6f8c2e-3b0d-4a39-9b77-6c8f0d1a2b3c&fbclid=IwAR0xYz"
           "&email=jane.doe%40acme.example&utm_source=talroo")
FLUSH_EVERY = 2000           # requests between flushes (≈ 0.5 s at a few thousand req/s)


class Request:
    """The attributes of a request `Edge.finish` reads."""

    method = "GET"
    version = HttpVersion11
    remote = "127.0.0.1"
    raw_headers = ()
    headers = CIMultiDictProxy(CIMultiDict({
        "Host": "careers.acme.example", "Accept": "*/*",
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        "Referer": "https://www.google.com/"}))

    def __init__(self, raw_path: str) -> None:
        self.raw_path = raw_path


def per_request(fmt: str, path: str, n: int, rounds: int) -> float:
    redactor = Redactor(PARAMS)
    log = AccessLog(io.BytesIO(), enabled=fmt != "off", fmt=fmt, redactor=lambda: redactor)
    edge = Edge(runtime=None, transport=None, metrics=Metrics(), outbox=None, journeys=None,
                access_log=log)
    request, response = Request(path), web.Response(body=b"x" * 4800)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            edge.finish(request, response, t0, "203.0.113.7", 0.002,  # type: ignore[arg-type]
                        "0123456789abcdef0123456789abcdef", 4800)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                log.flush()
        log.flush()
        log.stream = io.BytesIO()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"{'':<22}{'off µs':>9}{'json µs':>9}{'combined µs':>13}{'log cost (json)':>17}")
    for name, path in (("job page", PLAIN), ("landing, redacted", LANDING)):
        off, js, combined = (per_request(fmt, path, args.requests, args.rounds)
                             for fmt in ("off", "json", "combined"))
        print(f"{name:<22}{off:>9.2f}{js:>9.2f}{combined:>13.2f}{js - off:>17.2f}")


if __name__ == "__main__":
    main()
