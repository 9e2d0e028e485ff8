"""The one way SQLite runs off the event loop: a connection owned by one thread.

`await worker.run(fn)` runs `fn(conn)` in the worker's thread; `run_many(many, item)`
queues an item for a batch function (`many(conn, items) -> results`, one result per
item) so a burst of alike jobs costs a few statements instead of a few per job.
Results go back to each event loop in one `call_soon_threadsafe` per group.

A writer (`writes=True`) commits with group commit: the jobs that queue up while a
transaction runs are run together in the next one (`BEGIN IMMEDIATE`, so a
read-then-update is atomic across processes sharing the file), and every future of
the group resolves only after its COMMIT, synced to disk when `durable`. A group is
first run straight; should a job raise, it is rolled back and run again with each
job in its own SAVEPOINT, so one failing job undoes nothing of the others. Jobs run
in the order they were queued; consecutive items of one batch function run as one call.
`plain=True` runs a job alone outside any transaction (schema scripts).

A writer's commits never checkpoint the WAL themselves (a checkpoint syncs the
database file: tens of ms a submit would wait for): every `CHECKPOINT_JOBS` jobs, or
as soon as the WAL file is past `CHECKPOINT_BYTES`, it asks a reader of the same file
to run a passive checkpoint, beside its writes. Jobs alone are no measure: one
journey batch rewrites thousands of pages, and a WAL never checkpointed grows without
end, its index (`-shm`, mapped by every process on the file) with it. A restarted
WAL is truncated back (`state.open_sqlite` sets `journal_size_limit`), so its size
keeps telling how much waits for a checkpoint. A WAL restarts only when a checkpoint
has copied all of it before the next commit: with several processes committing,
passive checkpoints of a large WAL never get there, so past `RESTART_BYTES` the
checkpoint is a RESTART one (writers wait for it, once, instead of the WAL growing
for good).

A reader (`writes=False`) runs each job on its own, no transaction: WAL readers and
the writer never wait for each other. `shared_writer(path)` hands every store of a
process the same writer for one file: outbox, journeys, counters and the feed
commit together, one fsync for all of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy.state import WAL_SIZE_LIMIT, open_sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")
Item = TypeVar("Item")
MAX_GROUP = 512             # jobs per transaction at most
CHECKPOINT_JOBS = 1000      # a writer's jobs between two WAL checkpoints (~3 pages each)
CHECKPOINT_BYTES = WAL_SIZE_LIMIT   # a WAL this large asks a checkpoint whatever the jobs
RESTART_BYTES = 16 * CHECKPOINT_BYTES   # passive checkpoints fell behind: writers wait

Reply = tuple[asyncio.Future, asyncio.AbstractEventLoop] | concurrent.futures.Future
Many = Callable[[sqlite3.Connection, list[Any]], Sequence[Any]]


@dataclass(slots=True)
class Job:
    """`fn(conn)`, or one `item` of the batch function `many`; `reply` gets its result."""
    fn: Callable[[sqlite3.Connection], Any] | None
    many: Many | None
    item: Any
    reply: Reply | None = None
    plain: bool = False


class WorkerClosed(RuntimeError):
    pass


class SqliteWorker:
    def __init__(self, path: str, init: Callable[[sqlite3.Connection], None] | None = None,
                 name: str = "sqlite", *, create: bool = True, durable: bool = False,
                 writes: bool = True) -> None:
        """`create` and `durable` as `state.open_sqlite` takes them; `init(conn)` runs
        first, outside a transaction (its error is raised here)."""
        self.path = path
        self.durable, self.writes = durable, writes
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self.users = 1
        self.commits = 0            # transactions committed (group commit, observable)
        self.groups_retried = 0     # groups run again job by job after one raised
        self._checkpoints: Checkpoints | None = None
        conn = open_sqlite(path, create=create, durable=durable)
        try:
            if init is not None:
                init(conn)
            if writes and path != ":memory:":
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpoints = Checkpoints(path, SqliteWorker(
                    path, name=f"{name}-checkpoint", create=create, writes=False))
        except BaseException:
            conn.close()
            raise
        self._thread = threading.Thread(target=self._main, args=(conn,), name=name,
                                        daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def checkpoints(self) -> int:
        """Checkpoints asked of the checkpointer."""
        return 0 if self._checkpoints is None else self._checkpoints.asked

    @property
    def checkpoint_running(self) -> bool:
        """A checkpoint this writer asked for is queued or under way."""
        return self._checkpoints is not None and self._checkpoints.running

    # -- on the loop ---------------------------------------------------------------

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, plain: bool = False) -> T:
        return await self._put(Job(fn, None, None, (self._future(), _loop()), plain))

    async def run_many(self, many: Callable[[sqlite3.Connection, list[Item]], Sequence[T]],
                       item: Item) -> T:
        return await self._put(Job(None, many, item, (self._future(), _loop())))

    def call(self, fn: Callable[[sqlite3.Connection], T], *, plain: bool = False) -> T:
        """`run` for code that is not on an event loop (a constructor): blocks."""
        reply: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._check()
        self._jobs.put(Job(fn, None, None, reply, plain))
        return reply.result()

    async def close(self) -> None:
        """Run what is queued, then close the connection (the last user of a shared one)."""
        self.users -= 1
        if self.users > 0:
            return
        _forget(self)
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._checkpoints is not None:
            await self._checkpoints.checkpointer.close()

    def _future(self) -> asyncio.Future:
        self._check()
        return _loop().create_future()

    def _check(self) -> None:
        if self._closed:
            raise WorkerClosed(f"the SQLite worker on {self.path} is closed")

    async def _put(self, job: Job) -> Any:
        self._jobs.put(job)
        assert isinstance(job.reply, tuple)
        return await job.reply[0]

    # -- in the thread ---------------------------------------------------------------

    def _main(self, conn: sqlite3.Connection) -> None:
        try:
            stop = False
            while not stop:
                first = self._jobs.get()
                if first is None:
                    break
                group = [first]
                while len(group) < MAX_GROUP and not first.plain and self.writes:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    if job.plain:        # alone, after this group
                        self._run_group(conn, group)
                        group = [job]
                        break
                    group.append(job)
                self._run_group(conn, group)
        finally:
            conn.close()

    def _run_group(self, conn: sqlite3.Connection, group: list[Job]) -> None:
        if not self.writes or group[0].plain:
            for job in group:
                _deliver([job], _isolated(conn, [job], savepoints=False))
            return
        done = commit_group(conn, group, self.path)
        self.commits += done.committed
        self.groups_retried += done.retried
        # Asked before the callers hear back: one that awaits its write and then
        # `checkpoint_running` sees the checkpoint its own commit made due.
        if self._checkpoints is not None:
            self._checkpoints.after(len(group))
        _deliver(group, done.results)

    def post(self, fn: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future[Any]:
        """Queue `fn(conn)` alone, nobody waiting for it (its error is dropped); the
        future says when it has run."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put(Job(fn, None, None, done, plain=True))
        return done


class Checkpoints:
    """When a writer asks its side reader for a WAL checkpoint: every `CHECKPOINT_JOBS`
    jobs, or once the WAL file is past `CHECKPOINT_BYTES` (a RESTART past
    `RESTART_BYTES`); one asked at a time. The writer thread and the writer process
    both keep one."""

    __slots__ = ("path", "checkpointer", "asked", "since", "pending")

    def __init__(self, path: str, checkpointer: SqliteWorker) -> None:
        self.path = path
        self.checkpointer = checkpointer
        self.asked = 0
        self.since = 0
        self.pending: concurrent.futures.Future[Any] | None = None

    @property
    def running(self) -> bool:
        return self.pending is not None and not self.pending.done()

    def after(self, jobs: int) -> None:
        """`jobs` more committed: ask a checkpoint if one is due."""
        self.since += jobs
        if self.running:
            return
        wal = self.wal_size()
        if self.since >= CHECKPOINT_JOBS or wal > CHECKPOINT_BYTES:
            self.since = 0
            self.asked += 1
            mode = "RESTART" if wal > RESTART_BYTES else "PASSIVE"
            self.pending = self.checkpointer.post(lambda c: checkpoint(c, mode))

    def wal_size(self) -> int:
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0


@dataclass(slots=True)
class GroupDone:
    results: list[tuple[bool, Any]]     # (ok, result or exception), one per job
    committed: bool
    retried: bool                       # run again job by job after one raised


def begin_immediate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def commit_group(conn: sqlite3.Connection, group: list[Job], path: str, *,
                 begin: Callable[[sqlite3.Connection], None] = begin_immediate,
                 begun: bool = False) -> GroupDone:
    """Group commit, for a thread or a process: the group in one transaction, run
    straight, or again job by job in SAVEPOINTs should one raise; every result stands
    only if the COMMIT does. `begun`: the caller has run `begin` already."""
    retried = False
    try:
        if not begun:
            begin(conn)
        try:
            results = _straight(conn, group)
        except Exception:
            conn.execute("ROLLBACK")
            retried = True
            begin(conn)
            results = _isolated(conn, group, savepoints=True)
        conn.execute("COMMIT")
        return GroupDone(results, True, retried)
    except Exception as e:           # BEGIN or COMMIT failed: nothing is durable
        log.error("SQLite transaction on %s failed: %s", path, e)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return GroupDone([(False, e)] * len(group), False, retried)


def checkpoint(conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
    conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()


def _runs(group: list[Job]) -> list[list[Job]]:
    """Consecutive items of one batch function together; every other job alone."""
    out: list[list[Job]] = []
    for job in group:
        if job.many is not None and out and out[-1][0].many is job.many:
            out[-1].append(job)
        else:
            out.append([job])
    return out


def _call(conn: sqlite3.Connection, run: list[Job]) -> Sequence[Any]:
    head = run[0]
    if head.many is not None:
        results = head.many(conn, [j.item for j in run])
        if len(results) != len(run):
            raise RuntimeError("a batch function returned the wrong number of results")
        return results
    assert head.fn is not None
    return [head.fn(conn)]


def _straight(conn: sqlite3.Connection, group: list[Job]) -> list[tuple[bool, Any]]:
    """The whole group with no savepoint: any exception aborts it."""
    return [(True, r) for run in _runs(group) for r in _call(conn, run)]


def _isolated(conn: sqlite3.Connection, group: list[Job], *,
              savepoints: bool) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    for job in group:
        if savepoints:
            conn.execute("SAVEPOINT job")
        try:
            results.append((True, _call(conn, [job])[0]))
            if savepoints:
                conn.execute("RELEASE job")
        except Exception as e:
            if savepoints:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            results.append((False, e))
    return results


def _deliver(group: list[Job], results: list[tuple[bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, bool, Any]]] = {}
    for job, (ok, value) in zip(group, results):
        if job.reply is None:
            continue
        if isinstance(job.reply, concurrent.futures.Future):
            if ok:
                job.reply.set_result(value)
            else:
                job.reply.set_exception(value)
        else:
            fut, loop = job.reply
            by_loop.setdefault(loop, []).append((fut, ok, value))
    for loop, done in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, done)
        except RuntimeError:          # that loop is closed; nobody is waiting
            pass


def _resolve(done: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for fut, ok, value in done:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


# -- one writer per file and process ----------------------------------------------------

_shared: dict[tuple[int, str], SqliteWorker] = {}
_shared_lock = threading.Lock()


def shared_writer(path: str, *, durable: bool = False) -> SqliteWorker:
    """This process's writer for `path` (a forked child gets its own); each caller
    `close`s it once. `durable` turns `synchronous=FULL` on for everyone on it."""
    if path == ":memory:":
        return SqliteWorker(path, durable=durable)
    key = (os.getpid(), os.path.realpath(path))
    with _shared_lock:
        worker = _shared.get(key)
        if worker is None or worker.closed:
            worker = _shared[key] = SqliteWorker(path, name="sqlite-writer", durable=durable)
        else:
            worker.users += 1
    if durable and not worker.durable:
        worker.call(lambda c: c.execute("PRAGMA synchronous=FULL"), plain=True)
        worker.durable = True
    return worker


def _forget(worker: SqliteWorker) -> None:
    with _shared_lock:
        for key, held in list(_shared.items()):
            if held is worker:
                del _shared[key]
