"""One SQLite connection in a dedicated thread, with group commit.

Callers `await worker.run(fn)`; `fn(conn)` runs in the thread. Jobs that queue up
while a transaction commits are run together in the next one (each in its own
SAVEPOINT, so one failing job does not undo the others): under load many submits
share one commit, and the event loop never blocks on the disk.
Every transaction is `BEGIN IMMEDIATE`, so a read-then-update (a lease) is atomic
across processes sharing the file.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from proxy.state import open_sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_GROUP = 512             # jobs per transaction at most

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future, asyncio.AbstractEventLoop]


class WorkerClosed(RuntimeError):
    pass


class SqliteWorker:
    def __init__(self, path: str, init: Callable[[sqlite3.Connection], None],
                 name: str = "sqlite", *, create: bool = True, durable: bool = False) -> None:
        """`create` and `durable` as `state.open_sqlite` takes them."""
        self.path = path
        self._create, self._durable = create, durable
        self._init = init
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self.commits = 0                 # transactions run, for the benchmark
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise WorkerClosed("the outbox is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, fut, loop))
        return await fut

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        try:
            conn = open_sqlite(self.path, create=self._create, durable=self._durable)
            self._init(conn)
        except BaseException as e:      # surfaced to the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            stop = False
            while not stop:
                first = self._jobs.get()
                if first is None:
                    break
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    group.append(job)
                self._run_group(conn, group)
        finally:
            conn.close()

    def _run_group(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _, _ in group:
                conn.execute("SAVEPOINT job")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as e:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((False, e))
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as e:           # BEGIN or COMMIT failed: nothing is durable
            log.error("outbox transaction failed: %s", e)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(False, e)] * len(group)
        for (_, fut, loop), (ok, value) in zip(group, results):
            try:
                loop.call_soon_threadsafe(_resolve, fut, ok, value)
            except RuntimeError:          # that loop is closed; nobody is waiting
                pass


def _resolve(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
