"""Running the proxy: uvloop, N worker processes on one port, signals.

Each worker serves two listeners: the public one (`[proxy] listen`) and the
operators' one (`[admin] listen`, unless "off"). Each worker binds both ports itself
with SO_REUSEPORT, so the kernel spreads connections; metrics are summed over every
worker (prometheus multiprocess), so a scrape may land on any of them. The parent
only supervises: it forwards SIGHUP (reload) and SIGTERM (drain and exit 0),
restarts a worker that dies (with the rules file as it is now, on the ports bound
at start), and gives up with status 1 when workers keep dying at start. A worker dies
with its parent, so a killed supervisor leaves no orphan holding the port.
SIGTERM lets in-flight requests finish (up to `DRAIN_SECONDS`) before exiting.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from aiohttp import web

from proxy.app import RELOADER, admin_runner, build_app, edge_runner
from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config
from proxy.config.model import Config
from proxy.config.schema import parse_listen
from proxy.edge import EDGE
from proxy.metrics import enable_multiprocess, worker_exited

log = logging.getLogger("careers_edge")
DRAIN_SECONDS = 30.0       # SIGTERM: how long in-flight requests get to finish
BACKLOG = 2048
RESTART_PAUSE = 0.5        # seconds before a dead worker is replaced
QUICK_DEATH = 5.0          # a worker dying this soon after start failed to start ...
MAX_QUICK_DEATHS = 5       # ... and this many such deaths in a row stop the proxy (exit 1)
PR_SET_PDEATHSIG = 1       # linux/prctl.h: a signal for a worker whose parent dies

# Delivery tuning from the environment, not the rules file (operators and tests):


def bind(listen: str, reuse_port: bool, *, listen_now: bool = True) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen_now:
        sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:   # pragma: no cover - uvloop is a dependency on POSIX
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(config: Config, sock: socket.socket, *, worker: int = 0,
                overrides: Overrides | None = None,
                admin_sock: socket.socket | None = None) -> None:
    # Signals first: a SIGTERM or SIGHUP during start-up must not kill the process.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)   # nothing to reload yet
    app = build_app(config, crawl=None if worker == 0 else False, overrides=overrides)
    runner = edge_runner(app, access_log=None, shutdown_timeout=DRAIN_SECONDS,
                         handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=DRAIN_SECONDS)
    await site.start()
    admin = None
    if admin_sock is not None:
        admin = admin_runner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await admin.setup()
        await web.SockSite(admin, admin_sock, shutdown_timeout=1.0).start()
    reloader = app.get(RELOADER)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
    host, port = sock.getsockname()[:2]
    admin_at = "admin off"
    if admin_sock is not None:
        admin_at = "admin on {}:{}".format(*admin_sock.getsockname()[:2])
    log.info("worker %d serving on %s:%s (%s) → %s", worker, host, port, admin_at,
             config.proxy.upstream)
    await stop.wait()
    log.info("worker %d draining", worker)
    app[EDGE].live.close()     # live streams end now rather than hold the admin listener
    if admin is not None:      # it shares the application's parts: stop it first
        await admin.cleanup()
    await runner.cleanup()


def run_worker(config: Config, sock: socket.socket, worker: int,
               overrides: Overrides | None = None,
               admin_sock: socket.socket | None = None) -> None:
    install_uvloop()
    asyncio.run(serve(config, sock, worker=worker, overrides=overrides, admin_sock=admin_sock))


def bind_all(config: Config, reuse_port: bool, *, listen_now: bool = True
             ) -> list[socket.socket]:
    """The public socket, then the admin one when there is an admin listener."""
    socks: list[socket.socket] = []
    for listen in (config.proxy.listen, config.admin.listen):
        if listen is None:
            continue
        try:
            socks.append(bind(listen, reuse_port, listen_now=listen_now))
        except (OSError, ValueError) as exc:
            for sock in socks:
                sock.close()
            raise OSError(f"cannot listen on {listen}: {exc}") from None
    return socks


def run(config: Config, overrides: Overrides | None = None) -> int:
    """Serve until SIGTERM; returns the exit status (1: a port cannot be bound)."""
    workers = max(1, config.proxy.workers)
    try:
        # With workers, a busy port fails here, before forking. The probes are bound
        # but never listen: a listening socket nobody accepts on would get connections.
        socks = bind_all(config, reuse_port=workers > 1, listen_now=workers == 1)
    except OSError as exc:
        log.critical("%s", exc)
        return 1
    log.info("listening on %s (public) and %s (admin)", config.proxy.listen,
             config.admin.listen or "nothing")
    if not config.proxy.hosts and not config.proxy.public_url:
        log.warning("neither [proxy] hosts nor public_url is set: any Host is served "
                    "(development only)")
    if workers == 1:
        run_worker(config, socks[0], 0, overrides, socks[1] if len(socks) > 1 else None)
        return 0
    return supervise(config, workers, socks, overrides)


def supervise(config: Config, workers: int, probe: list[socket.socket],
              overrides: Overrides | None) -> int:
    """Fork `workers` workers, forward signals to them, restart one that dies."""
    parent = os.getpid()
    children: dict[int, tuple[int, float]] = {}      # pid -> (worker index, started)
    metrics_dir = tempfile.mkdtemp(prefix="careers-edge-metrics-")
    enable_multiprocess(metrics_dir)                 # one /metrics view of all workers
    try:
        return _supervise(config, probe, overrides, parent, children, workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(config: Config, probe: list[socket.socket], overrides: Overrides | None,
               parent: int, children: dict[int, tuple[int, float]], workers: int) -> int:

    def spawn(index: int, current: Config) -> None:
        pid = fork_worker()
        if pid == 0:
            code = 0
            try:
                _become_worker(parent, probe)
                log.debug("worker %d shares %d frozen objects with the supervisor",
                          index, gc.get_freeze_count())
                # The ports bound at start, whatever a reloaded file says now.
                socks = bind_all(config, reuse_port=True)
                run_worker(current, socks[0], index, overrides,
                           socks[1] if len(socks) > 1 else None)
            except BaseException:
                logging.getLogger("careers_edge").exception("worker %d failed", index)
                code = 1
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())

    for i in range(workers):
        spawn(i, config)
    for sock in probe:
        sock.close()
    stopping = False
    quick_deaths = 0

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
        entry = children.pop(pid, None)
        worker_exited(pid)
        if entry is None or stopping:
            continue
        index, started = entry
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH else 0
        if quick_deaths >= MAX_QUICK_DEATHS:
            log.critical("workers keep dying at start; stopping")
            forward(signal.SIGTERM, None)
            _reap(children)
            return 1
        log.error("worker %d exited (status %d); restarting", index, status)
        time.sleep(RESTART_PAUSE)
        spawn(index, _current_rules(config, overrides))
    return 0


def fork_worker() -> int:
    """`os.fork()`, the supervisor's objects frozen first. A worker shares the
    supervisor's heap page by page until it writes to one; a collection writes to
    every object it examines (its GC header), so without the freeze a worker's first
    full collections copy the pages of every module, class and function it inherited.
    Frozen objects are never examined, and stay shared."""
    gc.freeze()
    return os.fork()


def _become_worker(parent: int, probe: list[socket.socket]) -> None:
    """In a fresh fork: drop the parent's sockets and handlers, die with the parent."""
    for sock in probe:
        sock.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)    # until the worker's loop handles it
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):   # pragma: no cover - not glibc/musl
            pass
    if os.getppid() != parent:              # the parent died before prctl took effect
        os._exit(0)


def _current_rules(config: Config, overrides: Overrides | None) -> Config:
    """The rules file as it is now, for a restarted worker; the start rules if invalid."""
    if config.source is None:
        return config
    try:
        return load_config(config.source, overrides=overrides)
    except (ConfigErrors, OSError) as exc:     # keep serving something
        log.warning("restarting a worker with the rules it started with: %s", exc)
        return config


def _reap(children: dict[int, tuple[int, float]]) -> None:
    while children:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            return
        children.pop(pid, None)

