"""The last readiness answer, kept a little while: what `{prefix}/readyz` reports.

Apart from the endpoint (endpoints/health.py) so `Edge` can hold one without the
edge and the endpoints importing each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from proxy.background import spawn

READY_CACHE = 2.0


class Readiness:
    """The last readiness check, kept for `ttl` seconds; one check in flight at a time."""

    def __init__(self, ttl: float = READY_CACHE) -> None:
        self.ttl = ttl
        self._at: float | None = None        # when the kept answer was found
        self._result: list[str] = []
        self._running: asyncio.Future[list[str]] | None = None

    async def problems(self, check: Callable[[], Coroutine[Any, Any, list[str]]]) -> list[str]:
        """The kept answer while fresh, else `check()`'s (one in flight at a time)."""
        if self._at is not None and time.monotonic() - self._at < self.ttl:
            return self._result
        if self._running is None:
            self._running = spawn(check(), "readyz")
            self._running.add_done_callback(self._done)
        return list(await asyncio.shield(self._running))

    def _done(self, fut: asyncio.Future[list[str]]) -> None:
        self._running = None
        if not fut.cancelled() and fut.exception() is None:
            self._result, self._at = fut.result(), time.monotonic()
