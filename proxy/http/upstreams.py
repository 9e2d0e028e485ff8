"""The connection pools: one per upstream origin, the main one and each route's.

Pools outlive a rules reload: `sync` after a reload opens a pool for an origin a new
route needs and retires the pools no route uses any more. A retired pool takes no new
request; its idle connections close now and its busy ones when their response is done,
so a reload cuts no response short and leaves no connection behind. Routes whose
upstream is the main origin share the main pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from proxy.http.pool import UpstreamPool

log = logging.getLogger("careers_edge.upstreams")


class Upstreams:
    def __init__(self, main: UpstreamPool, main_origin: str,
                 make_pool: Callable[[str], UpstreamPool]) -> None:
        self.main = main
        self._main_origin = main_origin
        self._make = make_pool
        self._pools: dict[str, UpstreamPool] = {}

    def pool(self, origin: str) -> UpstreamPool:
        """The pool for a route's origin (opened here if a reload raced the request)."""
        found = self._pools.get(origin)
        if found is None:
            if origin == self._main_origin:
                return self.main
            found = self._pools[origin] = self._make(origin)
        return found

    def sync(self, origins: Iterable[str]) -> None:
        """Pools for exactly these route origins (besides the main one)."""
        wanted = {o for o in origins if o != self._main_origin}
        for origin in wanted - self._pools.keys():
            self._pools[origin] = self._make(origin)
        for origin in self._pools.keys() - wanted:
            log.info("upstream %s no longer routed: its pool is closed", origin)
            self._pools.pop(origin).retire()

    def items(self) -> list[tuple[str, UpstreamPool]]:
        """(origin, pool) for every upstream, the main one first."""
        return [(self._main_origin, self.main), *self._pools.items()]

    async def close(self) -> None:
        for _, pool in self.items():
            await pool.close()
        self._pools.clear()
