"""Request-side controls: `[proxy] allow_paths`, and a rule's `query` condition.

`allow_paths`: only the company's own paths of a shared ATS host are proxied.

Over real sockets: an allowed path reaches the upstream, any other path is answered
404 by the proxy and never forwarded (the upstream sees no request at all), the
proxy's own endpoints stay served, and `explain` says the same.
"""

from __future__ import annotations

from aiohttp import web

from proxy.config.load import load_config_text
from proxy.explain import explain
from tests.integration.harness import raw_exchange, stack

RULES_ALLOW = 'allow_paths = ["/acme", "/acme/**", "/embed/job_app"]'


def shared_board() -> tuple[web.Application, list[str]]:
    seen: list[str] = []

    async def board(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(text=f"<html><body>{request.path}</body></html>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", board)
    return app, seen


async def test_only_allowed_paths_reach_the_upstream(tmp_path) -> None:
    app, seen = shared_board()
    async with stack(app, tmp=tmp_path, proxy_extra=RULES_ALLOW) as st:
        async with st.session() as http:
            for path in ("/acme", "/acme/jobs/4012345", "/embed/job_app?for=acme&token=1"):
                async with http.get(path) as r:
                    assert r.status == 200, path
            for path in ("/rival/jobs/1", "/", "/acmecorp", "/embed/job_app/x",
                         "/rival/jobs/1?tlr_sid=0d5f0e2a-7c1b-4e8e-9a55-3f1c2b7d9e10"):
                async with http.get(path, headers={"Accept": "application/json"}) as r:
                    assert r.status == 404, path
                    assert (await r.json())["status"] == 404
            async with http.get("/_edge/healthz") as r:
                assert r.status == 200
        assert seen == ["/acme", "/acme/jobs/4012345", "/embed/job_app?for=acme&token=1"]


async def test_dot_segments_cannot_climb_out_of_allowed_paths(tmp_path) -> None:
    """The upstream resolves `/acme/../rival` to the rival's board: however the dots
    are spelled, such a path is answered 404 and never forwarded."""
    app, seen = shared_board()
    async with stack(app, tmp=tmp_path, proxy_extra=RULES_ALLOW) as st:
        for path in ("/acme/../rival/jobs/1", "/acme/%2e%2e/rival", "/acme/%2E%2e/rival",
                     "/acme/.%2e/rival", "/acme/..;x/rival", "/acme/jobs/../../rival",
                     "/acme/..%2frival", "/acme/%252e%252e/rival", "/acme/./jobs/1"):
            raw = await raw_exchange(st.proxy_url, f"GET {path} HTTP/1.1\r\nHost: careers.test"
                                     "\r\nConnection: close\r\n\r\n".encode())
            assert raw.startswith(b"HTTP/1.1 404 "), (path, raw[:200])
        raw = await raw_exchange(st.proxy_url, b"GET /acme/jobs/1...x HTTP/1.1\r\n"
                                 b"Host: careers.test\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    assert seen == ["/acme/jobs/1...x"]


def test_explain_says_a_path_outside_allow_paths_is_not_forwarded() -> None:
    config = load_config_text(f'[proxy]\nupstream = "https://boards.ats.example"\n{RULES_ALLOW}\n',
                              "rules.toml", {})
    out = explain(config, "GET", "https://careers.acme.example/rival/jobs/1")
    assert "not in [proxy] allow_paths: answered 404" in out
    out = explain(config, "GET", "https://careers.acme.example/acme/jobs/1")
    assert "allow_paths" not in out and "Click ids" in out


RULES_GRAPHQL = """
[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/api/graphql"
query = { op = "ApiSubmit*" }
status = [200]
send_to = ["ats"]

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-test"
"""


def graphql_api() -> web.Application:
    async def graphql(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"data": {"op": request.query.get("op")}})

    app = web.Application()
    app.router.add_post("/api/graphql", graphql)
    return app


async def test_a_query_condition_fires_only_for_its_operation(tmp_path) -> None:
    """One endpoint for every operation, the operation named in the query string."""
    async with stack(graphql_api(), RULES_GRAPHQL, tmp=tmp_path) as st:
        async with st.session() as http:
            for op in ("ApiJobBoardWithTeams", "ApiSubmitSingleApplicationFormAction",
                       "ApiTrackView"):
                async with http.post(f"/api/graphql?op={op}", json={"q": 1}) as r:
                    assert r.status == 200
            # Events are in the durable outbox before the response is answered.
            metrics = await st.metrics()
        assert 'edge_conversions_total{outcome="queued",sink="ats"} 1.0' in metrics
        hooks = await st.recorder.wait_for_all(lambda r: r.network == "webhook", count=1,
                                               timeout=15)
        assert [h.json()["event"] for h in hooks] == ["ApplicationCompleted"]
        assert len(st.recorder.of("webhook")) == 1
