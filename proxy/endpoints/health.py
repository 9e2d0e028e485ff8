"""`{prefix}/healthz` (serving) and `{prefix}/readyz` (upstream and state answer).

readyz asks the upstream and the state store; its answer is kept for `READY_CACHE`
seconds (proxy/readiness.py) and concurrent callers share one check, so no
number of callers can make it send the careers site more than one request per
interval and worker.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from proxy.edge import Edge

READY_TIMEOUT = 3.0


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body),
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def healthz(edge: Edge) -> web.Response:
    if edge.draining:
        return json_response({"status": "draining"}, 503)
    return json_response({"status": "ok", "uptime_s": round(time.time() - edge.started_at)})


async def _upstream_answers(edge: Edge) -> str | None:
    """None when every upstream (the main one and each route's) answers a HEAD."""
    rt = edge.runtime
    probes = {rt.upstream_origin: (edge.transport, b"/")}
    for route in rt.routes:                 # one probe per origin, at a routed path
        if route.origin not in probes:
            probes[route.origin] = (edge.upstreams.pool(route.origin), route.path.encode())

    async def probe(origin: str, pool, target: bytes) -> str | None:
        try:
            resp = await asyncio.wait_for(pool.request(
                "HEAD", target, [(b"User-Agent", b"careers-edge-readyz")], None,
                header_timeout=READY_TIMEOUT), READY_TIMEOUT + 1)
        except Exception as exc:   # any failure is "not ready", with its reason
            return f"upstream {origin}: {type(exc).__name__}: {exc}"
        resp.release()
        return None
    found = await asyncio.gather(*(probe(o, p, t) for o, (p, t) in probes.items()))
    return "; ".join(p for p in found if p) or None


async def _state_answers(edge: Edge) -> str | None:
    try:
        await asyncio.wait_for(edge.outbox.pending_count(), READY_TIMEOUT)
    except Exception as exc:
        return f"state: {type(exc).__name__}: {exc}"
    return None


async def _problems(edge: Edge) -> list[str]:
    return [p for p in await asyncio.gather(_upstream_answers(edge), _state_answers(edge))
            if p]


async def readyz(edge: Edge) -> web.Response:
    problems = list(await edge.readiness.problems(lambda: _problems(edge)))
    if edge.draining:
        problems.append("draining")
    if problems:
        return json_response({"status": "unavailable", "problems": problems}, 503)
    return json_response({"status": "ready"})
