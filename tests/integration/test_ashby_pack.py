"""rules/ashby.toml as shipped, over real sockets, in front of an Ashby-shaped upstream.

The upstream speaks Ashby's GraphQL as its header describes it (the operation in the
query string and the body, 200 for every answer, gzip-encoded as Ashby's CDN sends
it). Every sink is pointed at the local recorder. A visitor who landed with a Talroo
click id views a job and applies twice: refused first (the form comes back with an
error), then accepted. Talroo and the webhook get exactly one conversion, for the
accepted one; another company's board through the same proxy counts nothing; the
visitor's browser gets the upstream's bytes unchanged.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web
from test_rules_files import RULES, env_for

from proxy.app import build_app
from proxy.config.load import load_config
from proxy.demo.recorder import Recorder
from proxy.edge import EDGE, AccessLog
from tests.integration.harness import start

ORG = "acme"
POSTING = "4e6c2c61-1f4e-4b8c-9a37-0f5c9d3b2a10"
SID = "0d5f0e2a-7c1b-4e8e-9a55-3f1c2b7d9e10"


def ashby_upstream(sent: list[bytes]) -> web.Application:
    async def graphql(request: web.Request) -> web.Response:
        payload = await request.json()
        op = request.query["op"]
        assert payload["operationName"] == op
        variables = payload["variables"]
        if op == "ApiJobPosting":
            data: dict = {"data": {"jobPosting": {
                "id": variables["jobPostingId"], "title": "Staff Data Engineer",
                "applicationForm": {"id": "6a7e", "sections": []}}}}
        elif not variables.get("recaptchaToken"):
            data = {"data": {"submitApplicationFormAction": {
                "applicationFormResult": {"__typename": "FormRender", "formErrors": [
                    {"message": "Please verify you are human"}]},
                "messages": None}}}
        else:
            data = {"data": {"submitApplicationFormAction": {
                "applicationFormResult": {"__typename": "FormSubmitSuccess"},
                "messages": None}}}
        raw = gzip.compress(json.dumps(data).encode())
        sent.append(raw)
        return web.Response(body=raw, headers={"Content-Type": "application/json; charset=utf-8",
                                               "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/api/non-user-graphql", graphql)
    return app


def gql(op: str, org: str = ORG, **variables: object) -> dict:
    return {"operationName": op, "query": "…",
            "variables": {"organizationHostedJobsPageName": org, "jobPostingId": POSTING,
                          **variables}}


async def test_the_ashby_file_counts_the_accepted_application_once(tmp_path: Path) -> None:
    sent: list[bytes] = []
    up_runner, up_port = await start(ashby_upstream(sent))
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rec = f"http://127.0.0.1:{rec_port}"
    path = RULES / "ashby.toml"
    config = load_config(path, env=env_for(
        path, ATS_UPSTREAM=f"http://127.0.0.1:{up_port}", ASHBY_ORG=ORG,
        APPCAST_EVENTS_URL=f"{rec}/appcast/events", WEBHOOK_URL=f"{rec}/hooks/ats"))
    sinks = dict(config.sinks)
    sinks["talroo"] = replace(sinks["talroo"], url=f"{rec}/conversion2.php",
                              events={"Hire": f"{rec}/conversion3.php"})
    sinks["meta"] = replace(sinks["meta"], api=f"{rec}/v21.0")
    config = replace(config, sinks=sinks,
                     proxy=replace(config.proxy, state=f"sqlite:///{tmp_path / 'state.db'}",
                                   secret="a-test-cookie-key-0123456789"))
    app = build_app(config, access_log=AccessLog(enabled=False))
    px_runner, px_port = await start(app, proxy=True)
    url = f"http://127.0.0.1:{px_port}/api/non-user-graphql"
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=False) as http:
            # the visitor lands with a Talroo click id (a 404 from this upstream is fine)
            async with http.get(f"http://127.0.0.1:{px_port}/{ORG}?tlr_sid={SID}") as r:
                await r.read()
            steps = [("ApiJobPosting", gql("ApiJobPosting")),
                     ("ApiSubmitSingleApplicationFormAction",
                      gql("ApiSubmitSingleApplicationFormAction", recaptchaToken="")),
                     ("ApiSubmitSingleApplicationFormAction",
                      gql("ApiSubmitSingleApplicationFormAction", recaptchaToken="03AF-tok")),
                     ("ApiSubmitSingleApplicationFormAction",
                      gql("ApiSubmitSingleApplicationFormAction", org="otherco",
                          recaptchaToken="03AF-tok"))]
            for op, payload in steps:
                async with http.post(f"{url}?op={op}", json=payload) as r:
                    assert r.status == 200
                    assert r.headers["Content-Encoding"] == "gzip"
                    assert await r.read() == sent[-1]
        # durable before each answer: exactly one submit was queued per sink
        metrics = app[EDGE].metrics.render()[0].decode()
        for sink in ("webhook", "talroo"):
            assert f'edge_conversions_total{{outcome="queued",sink="{sink}"}} 1.0' in metrics
        hooks = await recorder.wait_for_all(lambda r: r.network == "webhook", count=1, timeout=15)
        talroo = await recorder.wait_for_all(lambda r: r.network == "talroo", count=1,
                                             timeout=15)
        events = [h.json() for h in recorder.of("webhook")]
        assert [e["event"] for e in events] == ["ApplicationCompleted"], events
        assert events[0]["click_ids"] == {"tlr_sid": SID}
        assert hooks[0].signature_valid("webhook_secret-value")
        assert len(talroo) == 1 and talroo[0].query["tlr_sid"] == SID
        metas = [json.loads(m.body)["data"][0]["event_name"] for m in recorder.of("meta")]
        assert sorted(metas) == ["ConversationStart", "SubmitApplication"]
        view = next(json.loads(m.body)["data"][0] for m in recorder.of("meta")
                    if json.loads(m.body)["data"][0]["event_name"] == "ConversationStart")
        assert view["custom_data"]["jobName"] == "Staff Data Engineer"
    finally:
        await px_runner.cleanup()
        await rec_runner.cleanup()
        await up_runner.cleanup()
