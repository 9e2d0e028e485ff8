"""CPU µs per request of the request path itself, in one process: `serve_request`
from the request's arrival to the response's last byte, before/after in one run.

The visitor's side is aiohttp's mocked request (no socket, no parser: the same
mocks for every checkout); the upstream is a real aiohttp server in another
process, reached through careers-edge's own pool, serving side_by_side's 4.8 KB
job page. Each checkout runs in its own process, alternately, `--rounds` times; a
line is the best of its checkout's rounds (the process's CPU time over `--requests`
requests, one at a time). Only the ratio between lines of one run means anything.

    python benchmarks/bench_pipeline.py [--baseline DIR] [--requests 2000] [--rounds 5]
                                        [--only PROFILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_passthrough import SELF_SERVE  # the upstream: a page from memory

HERE = Path(__file__).resolve().parent
PROFILES = ("pass-through", "Meta pixel", "returning, Meta pixel")

class Sink:
    """The visitor's connection: takes the bytes, does nothing else (plain methods,
    not mocks, which would cost more than the code measured)."""

    peername = ("127.0.0.1", 40000)
    sockname = ("127.0.0.1", 8080)
    ssl_context = None
    max_field_size = max_line_length = 8190
    max_headers = 128

    def __init__(self) -> None:
        self.transport = self
        self.writer = None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": self.peername, "sockname": self.sockname}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


def writer(sink: Sink):
    from aiohttp.abc import AbstractStreamWriter

    class Writer(AbstractStreamWriter):
        """aiohttp's public writer interface, writing nowhere."""

        def __init__(self) -> None:
            self.buffer_size = self.output_size = 0
            self.length = None

        @property
        def transport(self):
            return sink

        async def write(self, chunk, *, drain: bool = True, LIMIT: int = 0x10000) -> None:
            self.output_size += len(chunk)

        async def write_eof(self, chunk: bytes = b"") -> None:
            self.output_size += len(chunk)

        async def drain(self) -> None:
            pass

        def enable_compression(self, encoding: str = "deflate", strategy=None) -> None:
            pass

        def enable_chunking(self) -> None:
            pass

        async def write_headers(self, status_line: str, headers) -> None:
            self.output_size += len(status_line)

        def send_headers(self) -> None:
            pass

    return Writer()




def measure(origin: str, profile: str, requests: int, tmp: str) -> float:
    """µs of this process's CPU per request through serve_request."""
    from aiohttp.test_utils import make_mocked_request
    from bench_passthrough import edge_rules
    from side_by_side import RETURNING

    from proxy.app import build_app
    from proxy.config.load import load_config
    from proxy.edge import EDGE
    from proxy.pipeline import serve_request

    own = Path(tmp) / str(os.getpid())
    own.mkdir()
    path = edge_rules(origin, own, profile, profile != "pass-through", False, False)
    app = build_app(load_config(path))
    app.freeze()
    edge = app[EDGE]
    headers = {"Host": "127.0.0.1:8080", "User-Agent": "wrk", "Accept": "*/*"}
    if profile.startswith("returning"):
        headers["Cookie"] = RETURNING.partition(": ")[2]

    async def run() -> float:
        reqs = []
        for _ in range(requests):
            sink = Sink()
            out = sink.writer = writer(sink)
            reqs.append(make_mocked_request("GET", "/jobs/1", headers=headers, app=app,
                                            transport=sink, protocol=sink, writer=out))
        for r in reqs[:50]:                          # warm-up: connections, caches
            resp = await serve_request(edge, r)
            assert resp.status == 200, resp.status
        reqs = reqs[50:]
        t0 = time.process_time()
        for r in reqs:
            await serve_request(edge, r)
        used = time.process_time() - t0
        await edge.transport.close()
        return used / len(reqs) * 1e6

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(run())


def child(args: argparse.Namespace) -> int:
    print(f"{measure(args.origin, args.profile, args.requests, args.tmp):.1f}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", metavar="DIR", help="another checkout, measured alike")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", action="append", default=[], help="measure only these profiles")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--origin", help=argparse.SUPPRESS)
    p.add_argument("--profile", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    sys.path.insert(0, str(HERE))
    from side_by_side import NONCE

    from proxy.bench import free_port
    from proxy.demo.jobs import job_by_id
    from proxy.demo.pages import job_page

    with tempfile.TemporaryDirectory(prefix="careers-edge-pipeline-") as tmp:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        job = job_by_id("1")
        assert job is not None
        page = Path(tmp) / "job.html"
        page.write_bytes(job_page(origin, job, NONCE).encode())
        up = subprocess.Popen([sys.executable, "-c", SELF_SERVE, str(page), str(port)])
        try:
            time.sleep(1.0)
            trees = [("", os.environ.get("PYTHONPATH") or str(HERE.parent))]
            if args.baseline:
                trees.insert(0, (" (base)", str(Path(args.baseline).resolve())))
            best: dict[str, float] = {}
            profiles = [p for p in PROFILES if not args.only or p in args.only]
            for n in range(args.rounds):
                for profile in profiles:
                    # Which checkout goes first alternates: no order favours either.
                    for suffix, tree in trees if n % 2 == 0 else trees[::-1]:
                        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"}
                        out = subprocess.run(
                            [sys.executable, __file__, "--child", "--origin", origin,
                             "--profile", profile, "--requests", str(args.requests),
                             "--tmp", tmp], env=env, capture_output=True, text=True)
                        if out.returncode:
                            sys.exit(out.stderr)
                        name = profile + suffix
                        us = float(out.stdout.split()[-1])
                        best[name] = min(best.get(name, us), us)
        finally:
            up.terminate()
            up.wait()
    print(f"GET /jobs/1 through serve_request, {args.requests} requests, "
          f"best of {args.rounds} round(s)")
    print(f"{'':<34}{'CPU µs/req':>12}{'× base':>9}")
    for profile in profiles:
        for suffix, _ in trees:
            name = profile + suffix
            base = best.get(profile + " (base)")
            ratio = f"{best[name] / base:9.2f}" if base and suffix == "" else ""
            print(f"{name:<34}{best[name]:>12.1f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
