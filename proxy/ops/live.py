"""The live feed: one small in-process pub/sub for `{prefix}/api/stream`.

`publish(kind, data)` is called on the event loop by the firing stage (an event
submitted) and the dispatcher (a delivery recorded); it serialises once and puts
the bytes in each subscriber's bounded queue without waiting. A subscriber whose
queue is full (a stalled reader) is dropped, never waited for: the proxy does not
slow down for an operator's browser. Each process has its own feed (with several
workers a stream shows the events and deliveries of the worker it reached).
`close()` ends every stream at once (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

QUEUE_SIZE = 256          # messages a subscriber may fall behind before it is dropped
MAX_SUBSCRIBERS = 32


class Subscription:
    def __init__(self, live: Live, size: int) -> None:
        self._live = live
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(size)
        self.ended = False

    def _offer(self, item: tuple[str, bytes]) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False

    def _end(self) -> None:
        """Stop: what is queued is thrown away and the reader wakes at once."""
        if self.ended:
            return
        self.ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, timeout: float) -> tuple[str, bytes] | None:
        """The next message; None after `timeout` s of quiet or once ended (see `ended`)."""
        if self.ended:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        return None

    def close(self) -> None:
        self._live._subs.discard(self)
        self._end()


class Live:
    def __init__(self, queue_size: int = QUEUE_SIZE,
                 max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._subs: set[Subscription] = set()
        self._size = queue_size
        self._max = max_subscribers
        self.closed = False
        self.dropped = 0          # subscribers dropped for falling behind

    def subscribe(self) -> Subscription | None:
        """A new subscription, or None when closed or at `max_subscribers`."""
        if self.closed or len(self._subs) >= self._max:
            return None
        sub = Subscription(self, self._size)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self._subs:
            return
        item = (kind, orjson.dumps(data))
        for sub in list(self._subs):
            if not sub._offer(item):
                self.dropped += 1
                sub.close()

    def close(self) -> None:
        self.closed = True
        for sub in list(self._subs):
            sub.close()
