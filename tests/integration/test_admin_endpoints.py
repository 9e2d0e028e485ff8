"""The admin router in-process, on real sockets: readyz's cache, a mounted endpoint
served on the admin listener only, and method handling."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.integration.harness import stack


def counting_site() -> tuple[web.Application, list[str]]:
    seen: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    return app, seen


async def test_readyz_asks_the_careers_site_once_per_interval(tmp_path: Path) -> None:
    app, seen = counting_site()
    async with stack(app, tmp=tmp_path) as st:
        st.edge.readiness.ttl = 3600.0          # one interval for the whole test

        async def ready() -> int:
            async with st.admin() as c, c.get("/_edge/readyz") as r:
                return r.status

        assert await asyncio.gather(*(ready() for _ in range(20))) == [200] * 20
        assert [await ready() for _ in range(5)] == [200] * 5
        assert seen == ["HEAD /"]
        st.edge.readiness.ttl = 0.0             # every call checks afresh
        await ready()
        await ready()
        assert seen == ["HEAD /"] * 3


async def test_a_mounted_admin_endpoint_is_served_only_on_the_admin_listener(
        tmp_path: Path) -> None:
    app, seen = counting_site()
    async with stack(app, tmp=tmp_path) as st:
        async def tools(request: web.BaseRequest, target: str) -> web.Response:
            return web.Response(text=f"tools {request.method} {target}")

        async def funnel(request: web.BaseRequest) -> web.Response:
            return web.json_response({"days": 7})

        st.edge.admin.mount("/tools/", tools)
        st.edge.admin.add_plain("GET", "/api/funnel", funnel)
        async with st.admin() as c:
            async with c.get("/_edge/tools/events?x=1") as r:
                assert await r.text() == "tools GET /_edge/tools/events?x=1"
            async with c.get("/_edge/api/funnel") as r:
                assert (await r.json()) == {"days": 7}
            async with c.post("/_edge/api/funnel") as r:
                assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"
            async with c.get("/elsewhere") as r:
                assert r.status == 404
        async with st.session() as c:
            for path in ("/_edge/tools/", "/_edge/tools", "/_edge/tools/events",
                         "/_edge/api/funnel"):
                async with c.get(path) as r:
                    assert r.status == 404, path
                    assert "tools GET" not in await r.text() and "days" not in await r.text()
            async with c.get("/_edge/healthz") as r:
                assert r.status == 200                  # healthz is on both doors
        assert seen == []
        metrics = await st.metrics()
        assert 'edge_requests_total{code="404"}' not in metrics
