"""Batch functions on a SQLite file, run by a child process with group commit.

Why a process: a writer thread lets go of the GIL at every SQLite step and, behind
an event loop busy with Python work, waits up to the switch interval (5 ms) to take
it back, several times per transaction. The child competes with nobody for its GIL:
the loop writes each item down the child's stdin and reads the results from its
stdout with `add_reader`, no thread in between.

One child writes everything its parent's stores send it: `run(many, item)` queues
`item` for the batch function `many` (`many(conn, items) -> results`, a module-level
function, sent by name), so the outbox's submits and the journeys' batches share its
transactions and its fsyncs. The child (`python -m proxy.writer_process PATH INIT
DURABLE [BATCH ...]`; INIT is `module:function` or empty, the BATCHes are imported
before it answers "ready", `preload`) reads the items that queue up, takes the write
lock, adds those that arrived meanwhile, and runs them as `sqlite_worker.commit_group`
does: one transaction, every result sent back only after its COMMIT (synced to disk
when durable). A large write is sent in slices, one awaited after the other (the
journeys do), so an item queued behind it waits for one slice, not for all of it.

An item sent with `sync=False` (a journey slice) lets a transaction that holds
nothing else commit without an fsync: its frames reach the WAL file (a crash of
either process loses nothing) and the next synced commit or checkpoint syncs them. The
mode is chosen from what has queued as the write lock is tried (SQLite refuses to
change it inside a transaction); an item that needs a sync and arrives after an
unsynced transaction began waits for the next one, so every submit's COMMIT is synced.

Frames both ways are a 4-byte length and a pickle: `(id, "module:function", item,
sync)` in (the name, not the function: unpickling a function looks its module up, tens
of µs a submit), `(commits so far, seconds the group took, [(id, ok, result or
exception), ...])` out. The seconds, from the write lock taken to the COMMIT done, are
kept in `group_seconds`: what the file took, apart from the hand-off to and from the
child.

Sharing the file: the child is one more WAL connection. Other writers (a process's
`shared_writer` thread, other workers' children) take turns at the write lock; the
child polls for it every 0.1–1 ms rather than SQLite's busy handler's 1, 2, 5, 10 ms
steps, for 30 s at most, like the others' `busy_timeout`.

Lifecycle: started by `start()` or the first `run`, stopped by `close()` (its stdin
closed: it answers what it read and exits). It exits by itself when the parent dies
(EOF; it ignores SIGINT and SIGTERM, so a stop signal sent to the whole process
group lets the parent drain it first). If it dies, the items in flight raise
`WriterDied` and the next `run` starts another; one that died before answering
anything (not even "ready", once it has opened the file) is not restarted for
`RESTART_PAUSE` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
import itertools
import logging
import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proxy.sqlite_worker import (
    MAX_GROUP,
    Checkpoints,
    Job,
    SqliteWorker,
    commit_group,
)

log = logging.getLogger(__name__)
HEADER = struct.Struct(">I")
LOCK_TIMEOUT = 30.0         # seconds a group waits for the write lock, as `busy_timeout`
RESTART_PAUSE = 1.0         # seconds before replacing a child that never answered
READ = 1 << 20

Many = Callable[[sqlite3.Connection, list[Any]], Sequence[Any]]
Frame = tuple[int, str, Any, bool]      # id, batch function, item, its commit synced


class WriterDied(RuntimeError):
    """The writer process ended with this item in flight: it may or may not be written."""


class WriterClosed(RuntimeError):
    pass


@functools.cache
def _ref(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def _frame(value: Any) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _frames(buf: bytearray, limit: int) -> list[Any]:
    """Complete frames at the head of `buf` (taken out of it), `limit` at most."""
    out: list[Any] = []
    at = 0
    while len(out) < limit and len(buf) - at >= HEADER.size:
        (n,) = HEADER.unpack_from(buf, at)
        if len(buf) - at - HEADER.size < n:
            break
        out.append(pickle.loads(memoryview(buf)[at + HEADER.size:at + HEADER.size + n]))
        at += HEADER.size + n
    del buf[:at]
    return out


# -- in the parent, on its event loop -------------------------------------------------

class WriterProcess:
    """`await run(many, item)`: `many(conn, [item, ...])[i]`, committed, from the child."""

    def __init__(self, path: str, init: Callable[[sqlite3.Connection], None] | None = None,
                 *, durable: bool = True) -> None:
        self.path = path
        self._args = [path, _ref(init) if init else "", "1" if durable else "0"]
        self.commits = 0            # transactions the children committed
        self.starts = 0             # children started
        self.group_seconds: collections.deque[float] = collections.deque(maxlen=100_000)
        self._done_commits = 0      # those of children that ended
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._in = bytearray()
        self._out = bytearray()
        self._answered = False
        self._hold_until = 0.0
        self._ended: asyncio.Future[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closed = False
        self._wfd = self._rfd = -1          # the child's stdin and stdout

    @property
    def in_flight(self) -> int:
        """Items sent and not answered yet."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def unsent(self) -> int:
        """Bytes queued for the child that its pipe could not take yet."""
        return len(self._out)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start the child now, on the running loop (else the first `run` does)."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise WriterClosed(f"the writer process on {self.path} is closed")
        if self._proc is not None and self._proc.poll() is not None:
            self._end("it exited")          # before its EOF reached the loop
        if self._proc is not None:
            if self._loop is loop:
                return
            self._end("its event loop changed", kill=True)
        if time.monotonic() < self._hold_until:
            raise WriterDied(f"the writer process on {self.path} failed at start; "
                             f"it is started again shortly")
        env = dict(os.environ)      # the child imports the very code the parent runs
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen([sys.executable, "-m", "proxy.writer_process", *self._args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        self._proc, self._loop = proc, loop
        self._wfd, self._rfd = proc.stdin.fileno(), proc.stdout.fileno()
        self._in.clear()
        self._out.clear()
        self._answered = False
        self._ended = loop.create_future()
        self._ready = loop.create_future()
        self.starts += 1
        loop.add_reader(proc.stdout.fileno(), self._readable)

    def preload(self, many: Many) -> None:
        """Have the next child import `many`'s module before it answers "ready": else
        the first item for it waits for the import (a second on a loaded machine),
        and so does every item queued behind it."""
        ref = _ref(many)
        if ref not in self._args:
            self._args.append(ref)

    async def started(self) -> None:
        """Start the child and wait until it has opened the file; `WriterDied` if it
        could not."""
        self.start()
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def run(self, many: Many, item: Any, *, sync: bool = True) -> Any:
        """`sync=False`: the item's commit need not be synced to disk when nothing else
        in its group needs it (the next synced commit or checkpoint syncs it)."""
        self.start()
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        rid = next(self._ids)
        self._pending[rid] = fut
        self._send(_frame((rid, _ref(many), item, sync)))
        return await fut

    async def close(self) -> None:
        """Let the child answer what it was sent, then wait for it to exit."""
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        if self._loop is not asyncio.get_running_loop():
            self._end("closed from another event loop", kill=True)
            return
        assert proc.stdin is not None and self._ended is not None
        ended = self._ended
        while self._out and not ended.done():  # what the pipe could not take yet
            await asyncio.wait([ended], timeout=0.01)
        if not proc.stdin.closed:
            proc.stdin.close()                 # EOF: the child answers and exits
        await ended
        try:
            await asyncio.to_thread(proc.wait, LOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    def _send(self, data: bytes) -> None:
        if self._out:
            self._out += data
            return
        try:
            n = os.write(self._wfd, data)
        except BlockingIOError:
            n = 0
        except OSError:                    # the child is gone; its EOF tells the rest
            self._end("its stdin closed", kill=True)
            return
        if n < len(data):
            self._out += data[n:]
            assert self._loop is not None
            self._loop.add_writer(self._wfd, self._writable)

    def _writable(self) -> None:
        assert self._loop is not None
        try:
            n = os.write(self._wfd, self._out)
        except BlockingIOError:
            return
        except OSError:
            self._end("its stdin closed", kill=True)
            return
        del self._out[:n]
        if not self._out:
            self._loop.remove_writer(self._wfd)

    def _readable(self) -> None:
        try:
            data = os.read(self._rfd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end("it exited")
            return
        self._in += data
        for commits, seconds, results in _frames(self._in, len(self._in)):
            self._answered = True
            if results:
                self.group_seconds.append(seconds)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            self.commits = self._done_commits + commits
            for rid, ok, value in results:
                fut = self._pending.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    def _end(self, why: str, *, kill: bool = False) -> None:
        """The child is gone (or abandoned): fail what it had not answered."""
        proc, loop = self._proc, self._loop
        if proc is None or loop is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = None
        self._done_commits = self.commits
        if not loop.is_closed():
            loop.remove_reader(self._rfd)
            if not proc.stdin.closed:
                loop.remove_writer(self._wfd)
        if kill:
            proc.kill()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        code = proc.poll()
        if code is None:                          # reap it when it is gone
            if loop.is_running():
                loop.run_in_executor(None, proc.wait)
        pending, self._pending = self._pending, {}
        lost = [f for f in pending.values() if not f.done()]
        if not self._closed or lost:
            log.error("the SQLite writer process on %s ended (%s, status %s) with %d "
                      "item(s) in flight%s", self.path, why, code, len(lost),
                      "" if self._closed else "; the next one starts another")
        for fut in lost:
            fut.set_exception(WriterDied(
                f"the writer process on {self.path} ended ({why}) before answering"))
        if not self._answered:
            self._hold_until = time.monotonic() + RESTART_PAUSE
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(WriterDied(
                    f"the writer process on {self.path} ended ({why}) at start"))
                self._ready.exception()         # retrieved: nobody may be waiting
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)


# -- in the child ------------------------------------------------------------------------

def _lock(conn: sqlite3.Connection, before: Callable[[], None] | None = None) -> None:
    """BEGIN IMMEDIATE, polling the write lock finely (see the module's docstring); the
    child's connection has no busy timeout of its own. `before` runs before each try."""
    end = time.monotonic() + LOCK_TIMEOUT
    pause = 0.0001
    while True:
        if before is not None:
            before()
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > end:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.001)


def _taken(queued: Sequence[Frame], synced: bool) -> int:
    """How many of the queued items a transaction takes: all when its commit is synced;
    else those before the first that needs a sync (it waits for the next one)."""
    if synced:
        return len(queued)
    return next((i for i, f in enumerate(queued) if f[3]), len(queued))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _answer(value: Any) -> Any:
    """An exception as the parent can unpickle it."""
    try:
        pickle.loads(pickle.dumps(value))
        return value
    except Exception:
        return RuntimeError(f"{type(value).__name__}: {value}")


def serve(path: str, init: Callable[[sqlite3.Connection], None] | None,
          durable: bool, rfd: int, wfd: int, preload: Sequence[str] = ()) -> None:
    from proxy.state import open_sqlite
    conn = open_sqlite(path, create=False, durable=durable)
    conn.execute("PRAGMA wal_autocheckpoint=0")     # checkpoints run beside, as a thread
    conn.execute("PRAGMA busy_timeout=0")           # `_lock` waits for the write lock
    batch = functools.cache(_resolve)
    for ref in preload:
        batch(ref)
    if init is not None:
        init(conn)
    checkpoints = Checkpoints(path, SqliteWorker(path, name="checkpoint", create=False,
                                                 writes=False))
    _write_all(wfd, _frame((0, 0.0, [])))   # ready
    buf = bytearray()
    eof = False
    commits = 0
    queued: list[Frame] = []
    synced = durable                       # the connection's `synchronous` is FULL

    def fill(block: bool) -> None:
        """Read what the pipe holds into `queued`; `block`: wait for an item if none is
        queued or left in `buf` (a group takes `MAX_GROUP` at most)."""
        nonlocal eof
        queued.extend(_frames(buf, MAX_GROUP - len(queued)))
        block = block and not queued
        while not eof and (block or select.select([rfd], [], [], 0)[0]):
            data = os.read(rfd, READ)
            if not data:
                eof = True
            buf.extend(data)
            block = False
        queued.extend(_frames(buf, MAX_GROUP - len(queued)))

    def choose() -> None:
        """What queued so far, as the write lock is tried: a synced commit if any item
        needs one. Set outside a transaction (SQLite refuses it inside)."""
        nonlocal synced
        fill(block=False)
        sync = durable and any(f[3] for f in queued)
        if sync != synced:
            conn.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
            synced = sync

    while True:
        while not queued and not eof:
            fill(block=True)
        if not queued:
            break
        t0 = time.perf_counter()
        try:
            _lock(conn, choose)
        except sqlite3.OperationalError as e:
            failed, queued[:] = queued[:], []
            _write_all(wfd, _frame((commits, time.perf_counter() - t0,
                                    [(f[0], False, _answer(e)) for f in failed])))
            continue
        fill(block=False)                 # what queued while waiting for the lock
        n = _taken(queued, synced or not durable)
        frames, queued[:] = queued[:n], queued[n:]
        group = [Job(None, batch(ref), item) for _, ref, item, _ in frames]
        done = commit_group(conn, group, path, begin=_lock, begun=True)
        commits += done.committed
        _write_all(wfd, _frame((commits, time.perf_counter() - t0,
                                [(f[0], ok, value if ok else _answer(value))
                                 for f, (ok, value) in zip(frames, done.results)])))
        checkpoints.after(len(frames))
    conn.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent stops us: EOF
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, init_ref, durable, *preload = argv
    rfd, wfd = 0, os.dup(1)
    os.dup2(2, 1)                          # a stray print must not corrupt the replies
    try:
        serve(path, _resolve(init_ref) if init_ref else None, durable == "1", rfd, wfd,
              preload)
    except BrokenPipeError:                # the parent is gone
        return 0
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(main(sys.argv[1:]))
