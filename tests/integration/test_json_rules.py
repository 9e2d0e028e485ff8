"""JSON rules over real sockets: a single-page apply flow posting JSON, answered with JSON.

The upstream answers 200 whether or not the application was accepted, as GraphQL
endpoints do; only the JSON tells them apart. Each answer goes out plain, gzip or
br, chunked or with a length. The proxy must hand the client the upstream's bytes
unchanged, fire one conversion (job name from the JSON answer) for an accepted
application, none for a rejected one, and count bodies it could not read.
"""

from __future__ import annotations

import gzip
import json
import re

import brotli
import pytest
from aiohttp import web

from tests.integration.harness import stack

RULES = """
[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/api/graphql"
query = { op = "SubmitApplication" }
status = [200]
request_json = { operationName = "SubmitApplication" }
json = { errors = "null", "data.submitApplication.accepted" = "true" }
job_name = "json:data.submitApplication.posting.title"
extract = { posting_id = "request_json:variables.postingId" }
send_to = ["ats"]

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-test"
"""


def encode(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "br":
        return brotli.compress(body)
    return body


def answer(variables: dict) -> dict:
    if variables.get("email", "").endswith("@invalid.example"):
        return {"data": {"submitApplication": None},
                "errors": [{"message": "Invalid email", "path": ["submitApplication"]}]}
    return {"data": {"submitApplication": {
        "accepted": True,
        "posting": {"id": variables["postingId"], "title": "Senior Line Cook (Evenings)"}}}}


def ats(sent: list[bytes]) -> web.Application:
    """`coding`, `chunked`, `ctype`, `pad` in the query shape the answer's framing."""

    async def graphql(request: web.Request) -> web.StreamResponse:
        payload = json.loads(await request.read())
        data = answer(payload["variables"])
        pad = int(request.query.get("pad", "0"))
        if pad:
            data["pad"] = "x" * pad
        coding = request.query.get("coding", "identity")
        raw = encode(json.dumps(data).encode(), coding)
        sent.append(raw)
        resp = web.StreamResponse(headers={
            "Content-Type": request.query.get("ctype", "application/json; charset=utf-8")})
        if coding != "identity":
            resp.headers["Content-Encoding"] = coding
        if request.query.get("chunked"):
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(raw)
        await resp.prepare(request)
        step = 1000 if request.query.get("chunked") else len(raw)
        for i in range(0, len(raw), step):
            await resp.write(raw[i:i + step])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/api/graphql", graphql)
    return app


def application(email: str = "ada@example.com") -> dict:
    return {"operationName": "SubmitApplication",
            "variables": {"postingId": "7d1c0c9e-4d7e", "email": email}}


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("coding", ["identity", "gzip", "br"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_accepted_fires_once_rejected_never_bytes_unchanged(
        tmp_path, coding: str, chunked: bool) -> None:
    sent: list[bytes] = []
    query = f"op=SubmitApplication&coding={coding}" + ("&chunked=1&pad=40000" if chunked else "")
    async with stack(ats(sent), RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            async with http.post(f"/api/graphql?{query}",
                                 json=application("bob@invalid.example")) as r:
                assert r.status == 200
                assert await r.read() == sent[-1]
                assert r.headers.get("Content-Encoding", "identity") == coding
            async with http.post(f"/api/graphql?{query}", json=application()) as r:
                assert r.status == 200
                assert await r.read() == sent[-1]
        metrics = st.edge.metrics.render()[0].decode()
        assert metric(metrics, "edge_conversions_total", sink="ats", outcome="queued") == 1
        hook = await st.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        event = hook.json()
        assert event["event"] == "ApplicationCompleted"
        assert event["jobName"] == "Senior Line Cook (Evenings)"
        assert len(st.recorder.of("webhook")) == 1


async def test_the_request_condition_keeps_other_operations_out(tmp_path) -> None:
    sent: list[bytes] = []
    async with stack(ats(sent), RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            other = {**application(), "operationName": "SaveDraft"}
            async with http.post("/api/graphql?op=SubmitApplication", json=other) as r:
                assert await r.read() == sent[-1]
            # text/plain, as fetch() sends to avoid a preflight: sniffed all the same
            async with http.post("/api/graphql?op=SubmitApplication&ctype=text/plain",
                                 data=json.dumps(application()),
                                 headers={"Content-Type": "text/plain;charset=UTF-8"}) as r:
                assert await r.read() == sent[-1]
        metrics = st.edge.metrics.render()[0].decode()
        assert metric(metrics, "edge_conversions_total", sink="ats", outcome="queued") == 1
        hook = await st.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        assert hook.json()["jobName"] == "Senior Line Cook (Evenings)"


@pytest.mark.parametrize(("query", "side", "reason"), [
    ("pad=1100000", "response", "too_large"),
    ("pad=1100000&chunked=1", "response", "too_large"),
    ("pad=3000000&chunked=1&coding=gzip", "response", "too_large"),
    ("ctype=text/html", "response", "not_json"),
])
async def test_unreadable_answers_match_nothing_and_are_counted(
        tmp_path, query: str, side: str, reason: str) -> None:
    sent: list[bytes] = []
    async with stack(ats(sent), RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            async with http.post(f"/api/graphql?op=SubmitApplication&{query}",
                                 json=application()) as r:
                assert r.status == 200
                assert await r.read() == sent[-1]
        metrics = st.edge.metrics.render()[0].decode()
        assert metric(metrics, "edge_rule_json_skipped_total", body=side, reason=reason) == 1
        assert metric(metrics, "edge_conversions_total", sink="ats", outcome="queued") == 0


async def test_a_request_body_that_is_not_json_is_counted(tmp_path) -> None:
    async def graphql(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(answer({"postingId": "x"}))

    app = web.Application()
    app.router.add_post("/api/graphql", graphql)
    big = {**application(), "resume": "x" * (300 * 1024)}
    async with stack(app, RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            async with http.post("/api/graphql?op=SubmitApplication", data=b"{nope",
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200
            async with http.post("/api/graphql?op=SubmitApplication", json=big) as r:
                assert r.status == 200
        metrics = st.edge.metrics.render()[0].decode()
        assert metric(metrics, "edge_rule_json_skipped_total", body="request",
                      reason="invalid") == 1
        assert metric(metrics, "edge_rule_json_skipped_total", body="request",
                      reason="too_large") == 1
        assert metric(metrics, "edge_conversions_total", sink="ats", outcome="queued") == 0
