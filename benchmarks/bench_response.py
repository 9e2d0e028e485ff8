"""The proxied response's own cost, in microseconds: head and framing, no sockets.

`ProxyResponse` as the pipeline uses it (the headers `response_headers` gives the demo
job page, a visitor cookie added, the length set), prepared for an `EdgeRequest` and
finished over aiohttp's `StreamWriter` into a transport that only counts: a whole
4.8 KB page (head held, one send) and a streamed one (head, three chunks, the end).
The request and writer are made afresh each time and their cost taken off. Best of
the rounds; with `--baseline DIR` another checkout's `ProxyResponse` is measured too,
its rounds taking turns with this one's (each round a fresh process), so both see the
same machine.

    python benchmarks/bench_response.py [--rounds 7] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11, RawRequestMessage, StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.http.response import ProxyResponse
from proxy.http.server import EdgeRequest

PAGE = b"<!doctype html>" + b"x" * 4800
UPSTREAM_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache"),
    ("ETag", '"5f1c-17a2"'), ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
    ("Vary", "Accept-Encoding"), ("X-Frame-Options", "SAMEORIGIN"),
    ("Date", "Thu, 03 Dec 2026 11:00:00 GMT"), ("Via", "1.1 careers-edge"),
]
COOKIE = "_ce_v=0123456789abcdef0123456789abcdef; Path=/; Max-Age=31536000; SameSite=Lax"
N = 20000
CASES = ("whole page, head held", "streamed, chunked")


class Counting(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sends = 0

    def write(self, data: Any) -> None:
        self.sends += 1

    def writelines(self, list_of_data: Any) -> None:
        self.sends += 1

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Protocol(BaseProtocol):
    ssl_context = None       # read by the request, as on aiohttp's RequestHandler
    peername = ("127.0.0.1", 40000)
    sockname = ("127.0.0.1", 8080)


def drive(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine that never waits (nothing here does), without a loop turn."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the response waited")


def one_round() -> dict[str, tuple[float, int]]:
    """µs per response and sends per response for each case, one round of N."""
    loop = asyncio.new_event_loop()
    transport = Counting()
    protocol = Protocol(loop)
    protocol.connection_made(transport)
    headers = CIMultiDict({"Host": "careers.acme.example"})
    message = RawRequestMessage("GET", "/jobs/1", HttpVersion11, CIMultiDictProxy(headers),
                                ((b"Host", b"careers.acme.example"),), False, None, False,
                                False, URL("/jobs/1"))

    def request() -> EdgeRequest:
        return EdgeRequest(message, EMPTY_PAYLOAD, protocol, StreamWriter(protocol, loop),
                           None, loop)  # type: ignore[arg-type]

    async def whole(req: EdgeRequest) -> None:
        resp = ProxyResponse(status=200, reason="OK",
                             headers=UPSTREAM_HEADERS, set_cookies=[COOKIE],
                             content_length=len(PAGE), hold_headers=True)
        await resp.prepare(req)
        await resp.write_eof(PAGE)

    async def streamed(req: EdgeRequest) -> None:
        resp = ProxyResponse(status=200, reason="OK",
                             headers=UPSTREAM_HEADERS, set_cookies=[COOKIE])
        await resp.prepare(req)
        for i in range(3):
            await resp.write(PAGE[i * 1600:(i + 1) * 1600])
        await resp.write_eof(b"</html>")

    out = {}
    for name, case in zip(CASES, (whole, streamed)):
        transport.sends = 0
        drive(case(request()))
        sends = transport.sends
        reqs = [request() for _ in range(N)]
        t0 = time.perf_counter()
        for req in reqs:
            drive(case(req))
        out[name] = ((time.perf_counter() - t0) / N * 1e6, sends)
    loop.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--baseline", metavar="DIR")
    p.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one_round:
        print(json.dumps(one_round()))
        return
    here = str(Path(__file__).resolve().parents[1])
    checkouts = {"": here}
    if args.baseline:
        checkouts[" (base)"] = str(Path(args.baseline).resolve())
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.rounds):
        for label, source in checkouts.items():
            env = dict(os.environ, PYTHONPATH=source)
            out = subprocess.run([sys.executable, __file__, "--one-round"], env=env,
                                 check=True, capture_output=True, text=True).stdout
            for name, (us, sends) in json.loads(out).items():
                key = name + label
                if key not in best or us < best[key][0]:
                    best[key] = (us, sends)
    print(f"{'ProxyResponse, best of ' + str(args.rounds):40}{'µs':>8}{'sends':>7}")
    for name in CASES:
        for label in checkouts:
            us, sends = best[name + label]
            print(f"{name + label:40}{us:8.2f}{sends:7d}")
        if args.baseline:
            print(f"{'  ratio to base':40}{best[name][0] / best[name + ' (base)'][0]:8.2f}")


if __name__ == "__main__":
    main()
