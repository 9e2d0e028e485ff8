"""Running the proxy: uvloop, N worker processes on one port, signals.

Each worker binds the port itself with SO_REUSEPORT, so the kernel spreads
connections. The parent only supervises: it forwards SIGHUP (reload) and SIGTERM
(drain and exit 0) and restarts a worker that dies. SIGTERM lets in-flight
requests finish (up to `DRAIN_SECONDS`) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time

from aiohttp import web

from proxy.app import RELOADER, build_app
from proxy.config.env import Overrides
from proxy.config.model import Config

log = logging.getLogger("careers_edge")
DRAIN_SECONDS = 30.0


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def bind(listen: str, reuse_port: bool) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:   # pragma: no cover - uvloop is a dependency on POSIX
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(config: Config, sock: socket.socket, *, worker: int = 0,
                overrides: Overrides | None = None) -> None:
    app = build_app(config, crawl=None if worker == 0 else False, overrides=overrides)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=DRAIN_SECONDS,
                           handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=DRAIN_SECONDS)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    reloader = app.get(RELOADER)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
    host, port = sock.getsockname()[:2]
    log.info("worker %d serving on %s:%s → %s", worker, host, port, config.proxy.upstream)
    await stop.wait()
    log.info("worker %d draining", worker)
    await runner.cleanup()


def run_worker(config: Config, sock: socket.socket, worker: int,
               overrides: Overrides | None = None) -> None:
    install_uvloop()
    asyncio.run(serve(config, sock, worker=worker, overrides=overrides))


def run(config: Config, overrides: Overrides | None = None) -> int:
    """Serve until SIGTERM; returns the exit status."""
    workers = max(1, config.proxy.workers)
    if workers == 1:
        run_worker(config, bind(config.proxy.listen, reuse_port=False), 0, overrides)
        return 0
    children: dict[int, int] = {}       # pid -> worker index

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_worker(config, bind(config.proxy.listen, reuse_port=True), index, overrides)
            except BaseException:
                logging.getLogger("careers_edge").exception("worker %d failed", index)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index

    # Bind once in the parent first so a busy port fails loudly before forking.
    probe = bind(config.proxy.listen, reuse_port=True)
    for i in range(workers):
        spawn(i)
    probe.close()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is not None and not stopping:
            log.error("worker %d exited (status %d); restarting", index, status)
            time.sleep(0.5)
            spawn(index)
    return 0


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
