"""Events fired on JSON responses, through a real proxy, over real sockets (no browser).

The demo as `careers-edge demo` runs it (its site, rules/demo.toml, the recorder):
the job page's quick apply answers JSON, and what the proxy hands the page's script
in `X-Careers-Edge-Events` is what the Conversions API gets, one id. Then the carry:
spent on the next page unless the script marked it tracked. And with a plain
upstream: a 303 followed by fetch, and a header of ours the upstream cannot forge.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import aiohttp
import pytest
from aiohttp import web

from proxy.demo.jobs import job_by_id
from proxy.demo.run import ENV_RECORDER, ENV_UPSTREAM, Demo, running_demo
from proxy.edge import EDGE
from proxy.handoff import CARRY_COOKIE, FIRED_COOKIE, read_carry
from proxy.http.headers import EVENTS_HEADER
from tests.integration.harness import free_port, stack
from tests.integration.procs import metric_value

SID = "6f1c2a9e-8d3b-4c1a-9f0e-2b7d5a4c3e10"
QUICK_RULE = "quick apply accepted"
TITLE = job_by_id("3").title          # not ASCII: the header escapes it
FROM_SCRIPT = {"Sec-Fetch-Dest": "empty", "Accept": "application/json"}


@pytest.fixture
async def demo(tmp_path, monkeypatch) -> AsyncIterator[Demo]:
    monkeypatch.chdir(tmp_path)                      # the demo's state file lands here
    for var in (ENV_UPSTREAM, ENV_RECORDER):         # set by the demo; restored after
        monkeypatch.setenv(var, "")
    async with running_demo(free_port(), "127.0.0.1", free_port()) as d:
        yield d


def fired(demo: Demo, rule: str = QUICK_RULE) -> float:
    text = demo.app[EDGE].metrics.render()[0].decode()
    return metric_value(text, "edge_rules_fired_total", rule=rule)


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """Set-Cookie name -> the header's whole value."""
    out = {}
    for header in resp.headers.getall("Set-Cookie", []):
        out[header.split("=", 1)[0]] = header
    return out


def cookie_value(header: str) -> str:
    morsel = next(iter(SimpleCookie(header).values()))
    return morsel.value


async def quick_apply(http: aiohttp.ClientSession, base: str, job: str,
                      **fields: str) -> tuple[aiohttp.ClientResponse, dict]:
    resp = await http.post(f"{base}/api/jobs/{job}/applications", json=fields,
                           headers={**FROM_SCRIPT, "Referer": f"{base}/jobs/{job}"})
    return resp, await resp.json()


async def test_accepted_quick_apply_hands_the_page_the_server_events_id(demo: Demo) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await (await http.get(f"{demo.proxy_url}/jobs/3?tlr_sid={SID}")).read()
        visitor = {c.key: c.value for c in http.cookie_jar}["linksClickedId"]

        resp, doc = await quick_apply(http, demo.proxy_url, "3", name="Ann", email="")
        assert resp.status == 200 and doc["ok"] is False and doc["errors"]
        assert EVENTS_HEADER not in resp.headers and CARRY_COOKIE not in set_cookies(resp)
        assert fired(demo) == 0                # durable before the answer: nothing was

        resp, doc = await quick_apply(http, demo.proxy_url, "3", name="Ann",
                                      email="ann@example.com")
        assert resp.status == 200 and doc["ok"] is True
        [item] = json.loads(resp.headers[EVENTS_HEADER])
        carry = read_carry(cookie_value(set_cookies(resp)[CARRY_COOKIE]))

    meta = await demo.recorder.wait_for(lambda r: r.network == "meta")
    talroo = await demo.recorder.wait_for(lambda r: r.network == "talroo")
    [server] = meta.json()["data"]
    # Our event name: the page's Meta handler maps it as the sink does (SubmitApplication).
    assert item == {"event": "ApplicationCompleted", "event_id": server["event_id"],
                    "data": {"linksClickedId": visitor, "jobName": TITLE}}
    assert server["custom_data"]["jobName"] == TITLE           # json:job.title
    assert server["event_name"] == "SubmitApplication"
    assert server["event_source_url"] == f"{demo.proxy_url}/jobs/3"     # the page, not the API
    assert talroo.query["tlr_sid"] == SID
    assert [(e.name, e.event_id) for e in carry] == [("ApplicationCompleted", item["event_id"])]
    assert fired(demo) == 1


async def carried_then_next_page(demo: Demo, mark: bool) -> tuple[str, str, dict[str, str]]:
    """Quick apply, then the next page, the id marked tracked by the script or not."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        await (await http.get(f"{demo.proxy_url}/jobs/2")).read()
        resp, _ = await quick_apply(http, demo.proxy_url, "2", name="Bo", email="bo@example.com")
        [item] = json.loads(resp.headers[EVENTS_HEADER])
        if mark:        # what the page's script writes once it has tracked the header
            jar.update_cookies({FIRED_COOKIE: item["event_id"]})
        page = await http.get(f"{demo.proxy_url}/jobs", headers={"Accept-Encoding": "identity"})
        return item["event_id"], await page.text(), set_cookies(page)


async def test_the_next_page_does_not_track_what_the_script_tracked(demo: Demo) -> None:
    event_id, html, cookies = await carried_then_next_page(demo, mark=True)
    assert event_id not in html and "careersEdge.track([" not in html
    assert "Max-Age=0" in cookies[CARRY_COOKIE] and "Max-Age=0" in cookies[FIRED_COOKIE]


async def test_without_the_script_the_next_page_tracks_the_carry(demo: Demo) -> None:
    event_id, html, cookies = await carried_then_next_page(demo, mark=False)
    assert f'careersEdge.track([{{"event":"ApplicationCompleted","event_id":"{event_id}"' \
        in html
    assert "Max-Age=0" in cookies[CARRY_COOKIE] and FIRED_COOKIE not in cookies


async def test_a_plain_form_post_to_the_api_counts_and_carries(demo: Demo) -> None:
    """JavaScript off: the quick-apply form posts itself; the JSON is what the visitor sees."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await http.post(f"{demo.proxy_url}/api/jobs/4/applications",
                               data={"name": "Cy", "email": "cy@example.com"},
                               headers={"Sec-Fetch-Dest": "document"})
        assert (await resp.json())["ok"] is True
        assert CARRY_COOKIE in set_cookies(resp)
    assert fired(demo) == 1


# --- a plain upstream ------------------------------------------------------------------

RULES = """
[pixels.meta]
type = "meta"
pixel_id = "123456789012345"
paths = ["/**"]

[[rules]]
name = "applied"
event = "ApplicationCompleted"
method = "POST"
path = "/api/apply"
status = [303]
send_to = ["meta"]

[[rules]]
name = "saved"
event = "Lead"
method = "POST"
path = "/api/save"
status = [200]
send_to = ["meta"]

[[rules]]
name = "job viewed"
event = "ViewContent"
method = "GET"
path = "/api/jobs/*"
status = [200]
send_to = ["meta"]

[sinks.meta]
type = "meta"
pixel_id = "123456789012345"
access_token = "t"
api = "{recorder}/v21.0"
"""


def api_app() -> web.Application:
    async def apply(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/api/applications/1")

    async def application(request: web.Request) -> web.Response:
        return web.json_response({"id": 1})

    async def save(request: web.Request) -> web.Response:
        # An upstream cannot speak for the proxy: this header never reaches the visitor.
        return web.json_response({"ok": True}, headers={EVENTS_HEADER: '[{"event":"X"}]'})

    app = web.Application()
    app.router.add_post("/api/apply", apply)
    app.router.add_get("/api/applications/1", application)
    app.router.add_post("/api/save", save)
    app.router.add_get("/api/forged", save)
    app.router.add_get("/api/jobs/7", application)
    return app


async def test_fetch_following_a_redirect_gets_the_carry_in_the_header(tmp_path) -> None:
    async with stack(api_app(), RULES, tmp=tmp_path) as st, st.session() as http:
        resp = await http.post("/api/apply", headers=FROM_SCRIPT)   # fetch follows the 303
        assert resp.status == 200 and resp.history[0].status == 303
        carry = read_carry(cookie_value(set_cookies(resp.history[0])[CARRY_COOKIE]))
        [item] = json.loads(resp.headers[EVENTS_HEADER])
        assert item["event_id"] == carry[0].event_id and item["event"] == "ApplicationCompleted"
        # The same GET for anything but a script (an image, a stylesheet) leaves it be.
        plain = await http.get("/api/applications/1")
        assert EVENTS_HEADER not in plain.headers


async def meta_events(recorder, count: int) -> list[dict]:
    """The first `count` events the Conversions API got, however they were batched."""
    requests = 1
    while True:
        sent = await recorder.wait_for_all(lambda r: r.network == "meta", count=requests)
        events = [e for r in sent for e in r.json()["data"]]
        if len(events) >= count:
            return events
        requests += 1


async def test_a_get_from_a_pages_script_is_sent_as_that_page(tmp_path) -> None:
    """Meta's event_source_url is the page the visitor saw, not the API it fetched."""
    async with stack(api_app(), RULES, tmp=tmp_path) as st:
        page = st.proxy_url + "/jobs/7?utm_source=x"
        async with st.session() as http:          # the page's fetch
            resp = await http.get("/api/jobs/7", headers={**FROM_SCRIPT, "Referer": page})
            [item] = json.loads(resp.headers[EVENTS_HEADER])
        async with st.session() as http:          # another visitor opens the address
            await (await http.get("/api/jobs/7", headers={"Referer": page})).read()
        events = await meta_events(st.recorder, 2)
    [fetched] = [e for e in events if e["event_id"] == item["event_id"]]
    [opened] = [e for e in events if e["event_id"] != item["event_id"]]
    assert fetched["event_source_url"] == page
    assert opened["event_source_url"] == st.proxy_url + "/api/jobs/7"


async def test_the_upstreams_own_events_header_is_dropped(tmp_path) -> None:
    async with stack(api_app(), RULES, tmp=tmp_path) as st, st.session() as http:
        resp = await http.post("/api/save", headers=FROM_SCRIPT)
        [item] = json.loads(resp.headers[EVENTS_HEADER])
        assert item["event"] == "Lead"
        assert len(resp.headers.getall(EVENTS_HEADER)) == 1
        async with st.session() as fresh:     # a new visitor: nothing fired, nothing carried
            other = await fresh.get("/api/forged", headers=FROM_SCRIPT)
            assert other.status == 200 and EVENTS_HEADER not in other.headers


# --- a JSON answer read before its headers go out ------------------------------------------

JSON_RULES = RULES + """
[[rules]]
name = "streamed"
event = "ApplicationCompleted"
method = "POST"
path = "/api/stream/*"
status = [200]
json = { ok = "true" }
job_name = "json:job"
send_to = ["meta"]
"""
PADDING = "x" * 300_000


def streaming_app() -> web.Application:
    """JSON sent in several writes, gzipped or not; or cut off before its end."""
    async def stream(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        size = 7 if kind == "large" else 1             # 2.1 MB past the 1 MiB limit
        doc = json.dumps({"ok": True, "job": "Welder – Köln", "pad": PADDING * size}).encode()
        if kind == "gzip":
            doc = gzip.compress(doc)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if kind == "gzip":
            resp.headers["Content-Encoding"] = "gzip"
        if kind == "cut":
            resp.content_length = len(doc)
        await resp.prepare(request)
        for i in range(0, len(doc) // 2 if kind == "cut" else len(doc), 65536):
            await resp.write(doc[i:i + 65536])
            await asyncio.sleep(0)
        if kind == "cut":
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/api/stream/{kind}", stream)
    return app


@pytest.mark.parametrize("kind", ["plain", "gzip"])
async def test_a_json_rule_names_its_events_in_the_answers_headers(tmp_path, kind) -> None:
    async with stack(streaming_app(), JSON_RULES, tmp=tmp_path) as st:
        async with st.session() as http:
            resp = await http.post(f"/api/stream/{kind}", headers=FROM_SCRIPT)
            raw = await resp.read()
            [item] = json.loads(resp.headers[EVENTS_HEADER])
            carry = read_carry(cookie_value(set_cookies(resp)[CARRY_COOKIE]))
        sent = await st.recorder.wait_for(lambda r: r.network == "meta")
    [server] = sent.json()["data"]
    assert item["event_id"] == server["event_id"] == carry[0].event_id
    assert item["data"]["jobName"] == "Welder – Köln"
    body = gzip.decompress(raw) if kind == "gzip" else raw
    assert json.loads(body)["pad"] == PADDING                  # the bytes, all of them


async def test_a_json_answer_past_the_limit_streams_on_and_fires_nothing(tmp_path) -> None:
    async with stack(streaming_app(), JSON_RULES, tmp=tmp_path) as st, st.session() as http:
        resp = await http.post("/api/stream/large", headers=FROM_SCRIPT)
        assert resp.status == 200 and EVENTS_HEADER not in resp.headers
        assert json.loads(await resp.read())["pad"] == PADDING * 7   # the whole answer
        text = st.edge.metrics.render()[0].decode()
        assert metric_value(text, "edge_rules_fired_total", rule="streamed") == 0


async def test_a_json_answer_cut_before_the_rules_read_it_is_a_502(tmp_path) -> None:
    async with stack(streaming_app(), JSON_RULES, tmp=tmp_path) as st, st.session() as http:
        resp = await http.post("/api/stream/cut", headers=FROM_SCRIPT)
        assert resp.status == 502 and EVENTS_HEADER not in resp.headers
