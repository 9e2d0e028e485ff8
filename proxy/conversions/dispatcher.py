"""Delivers the outbox: one loop per sink, off the request path.

Each sink has its own loop, concurrency (`Sink.concurrency` requests in flight) and
queue position, so a slow or dead network never delays the others. A loop leases due
rows under this process's owner id, sends them in batches of the sink's
`batch_size`, and records each `Decision` (with the network's status and the head of
its answer); `observer`, if given, sees each recorded row as it now is (the operators'
live feed). It wakes on a submit in this process, on
a scheduled retry coming due, and otherwise polls (other processes share the file).
`build_app` owns its `start` and `stop` (`background.part`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import aiohttp

from proxy.background import spawn
from proxy.config.model import Sink
from proxy.conversions.backoff import DEFAULT_POLICY, BackoffPolicy, GiveUp, Retry, Sent, next_delay
from proxy.conversions.outbox import LAST_BODY, Outbox, OutboxRow, observe_backlog
from proxy.conversions.sinks import SinkClient, build_sink
from proxy.conversions.states import RowState
from proxy.metrics import Metrics

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0          # seconds between looks at the outbox when idle
LEASE_SECONDS = 60.0         # a claim outlives the longest request (sink timeouts ≤ 30 s)
STOP_GRACE = 2.0             # seconds in-flight deliveries get to finish on stop
HOUSEKEEPING_INTERVAL = 5.0  # gauge refresh; purge runs every 60 of these


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Dispatcher:
    def __init__(self, outbox: Outbox, sinks: Mapping[str, Sink], *,
                 metrics: Metrics | None = None,
                 session: aiohttp.ClientSession | None = None,
                 poll_interval: float = POLL_INTERVAL, lease_seconds: float = LEASE_SECONDS,
                 policy: BackoffPolicy = DEFAULT_POLICY, rng: random.Random | None = None,
                 owner: str | None = None,
                 client_factory: Callable[[Sink], SinkClient] = build_sink,
                 observer: Callable[[OutboxRow], None] | None = None) -> None:
        self.outbox = outbox
        self.observer = observer
        self.metrics = metrics
        self.owner = owner or owner_id()
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.policy = policy
        self.rng = rng or random.Random()
        self._client_factory = client_factory
        self._session = session
        self._own_session = session is None
        self._sinks: dict[str, Sink] = {}
        self._clients: dict[str, SinkClient] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._inflight: dict[str, set[asyncio.Task[None]]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._started = False
        self._configure(sinks)
        outbox.subscribe(self._on_submit)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        self._started = True
        for name in self._sinks:
            self._start_loop(name)
        self._housekeeping = spawn(self._housekeep(), "outbox-housekeeping")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop leasing, give in-flight deliveries `grace` s, release what is left."""
        self._started = False
        tasks = [*self._loops.values()] + ([self._housekeeping] if self._housekeeping else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        inflight = [t for ts in self._inflight.values() for t in ts]
        if inflight:
            _, late = await asyncio.wait(inflight, timeout=grace)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.outbox.release(self.owner)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def reconfigure(self, sinks: Mapping[str, Sink]) -> None:
        """New rules: loops for new sinks, none for removed ones (their rows wait)."""
        removed = set(self._sinks) - set(sinks)
        for name in removed:
            task = self._loops.pop(name, None)
            if task:
                task.cancel()
        self._configure(sinks)
        if self._started:
            for name in self._sinks:
                if name not in self._loops:
                    self._start_loop(name)

    def _configure(self, sinks: Mapping[str, Sink]) -> None:
        self._sinks = dict(sinks)
        self._clients = {name: self._client_factory(s) for name, s in sinks.items()}
        for name in sinks:
            self._wake.setdefault(name, asyncio.Event())
            self._inflight.setdefault(name, set())

    def _start_loop(self, name: str) -> None:
        self._loops[name] = spawn(self._run_sink(name), f"sink:{name}")

    def _on_submit(self, sinks: Iterable[str]) -> None:
        for name in sinks:
            if name in self._wake:
                self._wake[name].set()

    # -- one sink -------------------------------------------------------------------

    async def _run_sink(self, name: str) -> None:
        wake = self._wake[name]
        inflight = self._inflight[name]
        # Ended by `stop`'s cancel, or failing that by its flag: a store's client that
        # turns a cancellation into an error of its own (logged below) must not keep
        # this loop, and `stop` waiting for it, alive.
        while self._started:
            wake.clear()
            sink, client = self._sinks[name], self._clients[name]
            batch = max(client.batch_size, 1)
            free = max(sink.concurrency, 1) - len(inflight)
            rows: list[OutboxRow] = []
            if free > 0:
                try:
                    rows = await self.outbox.lease(name, self.owner, free * batch,
                                                   self.lease_seconds)
                except Exception:
                    log.exception("outbox lease failed for sink %s", name)
                for start in range(0, len(rows), batch):
                    task = asyncio.create_task(
                        self._deliver(name, client, rows[start:start + batch]))
                    inflight.add(task)
                    task.add_done_callback(self._done_callback(inflight, wake))
                if rows and len(rows) == free * batch:
                    continue                    # probably more due: look again at once
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await wake.wait()

    @staticmethod
    def _done_callback(inflight: set[asyncio.Task[None]], wake: asyncio.Event
                       ) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            wake.set()              # capacity freed: lease again
        return done

    async def _deliver(self, name: str, client: SinkClient, rows: Sequence[OutboxRow]) -> None:
        assert self._session is not None
        try:
            decisions = await client.send(self._session, [r.event for r in rows])
        except Exception as e:
            log.exception("sink %s failed", name)
            decisions = [GiveUp(f"{type(e).__name__}: {e}"[:500])] * len(rows)
        if len(decisions) != len(rows):
            decisions = [GiveUp("sink answered the wrong number of decisions")] * len(rows)
        sent: dict[int | None, list[OutboxRow]] = {}
        for row, d in zip(rows, decisions):
            try:
                if isinstance(d, Sent):
                    sent.setdefault(d.code, []).append(row)
                elif isinstance(d, Retry):
                    delay = next_delay(row.attempts, d.after, self.rng, self.policy)
                    if await self.outbox.mark_retry([row.id], self.owner, delay, d.error,
                                                    d.code, d.body):
                        self._observe(row, RowState.RETRY, d.code, d.body,
                                      time.time() + delay)
                    self._count(name, "retried")
                    asyncio.get_running_loop().call_later(delay, self._wake[name].set)
                else:
                    log.warning("sink %s gave up on %s: %s", name, row.event.event_id, d.error)
                    if await self.outbox.mark_dead([row.id], self.owner, d.error, d.body,
                                                   d.code):
                        self._observe(row, RowState.DEAD, d.code, d.body)
                    self._count(name, "dead")
            except Exception:
                log.exception("recording a delivery for sink %s failed", name)
        for code, done in sent.items():
            try:
                await self.outbox.mark_sent([r.id for r in done], self.owner, code)
                self._count(name, "sent", len(done))
            except Exception:
                log.exception("recording deliveries for sink %s failed", name)
                continue
            for row in done:
                self._observe(row, RowState.SENT, code, "")

    def _observe(self, row: OutboxRow, state: RowState, code: int | None, body: str,
                 next_at: float | None = None) -> None:
        if self.observer is None:
            return
        now = time.time()
        try:
            self.observer(dataclasses.replace(
                row, state=state, last_code=code, last_body=body[:LAST_BODY],
                updated_at=now, next_attempt_at=row.next_attempt_at if next_at is None
                else next_at, lease_owner=None, lease_expires_at=None))
        except Exception:
            log.exception("delivery observer failed")

    def _count(self, sink: str, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.conversions.labels(sink, outcome).inc(n)

    async def _housekeep(self) -> None:
        ticks = 0
        while self._started:            # as `_run_sink`'s loop
            try:
                if self.metrics is not None:
                    await observe_backlog(self.outbox, self.metrics)
                if ticks % 60 == 0:
                    await self.outbox.purge()
            except Exception:
                log.exception("outbox housekeeping failed")
            ticks += 1
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)

