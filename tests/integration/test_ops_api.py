"""The operators' JSON API over real sockets, once with SQLite and once with Redis state:
the same visitors, the same answers. The demo site is the careers site, the recorder
the networks (talroo, meta, a webhook)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.demo.site import build_site
from proxy.endpoints import ops_stream
from tests.integration.harness import Stack, raw_exchange, stack
from tests.integration.procs import apply_rule

pytest_plugins = ["redis_server"]
REDIS_DB = 9                 # the proxy uses the production key prefix: a db of its own
WAIT = 30.0                  # seconds a delivery gets to show up; not a timed assertion
PIXEL = "123456789012345"
RULES = """
[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{job_id}/apply"
status = [200]
send_to = ["meta", "ats"]
""" + apply_rule("talroo", "meta", "ats") + """
[sinks.talroo]
type = "talroo"
url = "{recorder}/conversion2.php"

[sinks.meta]
type = "meta"
pixel_id = "%(pixel)s"
access_token = "tok-123"
api = "{recorder}/v21.0"
preview_test_event_code = "TEST4242"

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-1"

[api]
token = "api-secret"
send_to = ["ats"]

[admin]
%(admin)s
""".replace("%(pixel)s", PIXEL)


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def rules(admin: str = 'preview_token = "${PREVIEW_TOKEN}"') -> str:
    return RULES.replace("%(admin)s", admin)


@pytest.fixture
async def s(tmp_path, state) -> AsyncIterator[Stack]:
    async with stack(build_site, rules(), tmp=tmp_path, state=state,
                     env={"PREVIEW_TOKEN": "let-me-see"}) as st:
        yield st


async def api(st: Stack, path: str, method: str = "GET",
              token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with st.admin() as c, c.request(method, "/_edge" + path, headers=headers) as r:
        body = await r.read()
        if r.content_type == "application/json":
            return r.status, orjson.loads(body)
        return r.status, body


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy (the dispatcher works meanwhile)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


def form(title: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("job_title", title)
    data.add_field("name", "Ada Lovelace")
    data.add_field("email", "ada@example.com")
    return data


async def visit(c: aiohttp.ClientSession, query: str = "", job: str = "2",
                title: str = "Warehouse Associate", apply: bool = True) -> str:
    """Land, open the application form, maybe apply; the visitor's linksClickedId."""
    async with c.get(f"/jobs/{job}" + (f"?{query}" if query else "")) as r:
        assert r.status == 200
        await r.read()
    async with c.get(f"/jobs/{job}/apply") as r:
        assert r.status == 200
        await r.read()
    if apply:
        async with c.post(f"/jobs/{job}/apply", data=form(title), allow_redirects=False) as r:
            assert r.status == 303, await r.text()
    return next(m.value for m in c.cookie_jar if m.key == "linksClickedId")


def deliveries(journey: dict[str, Any], event: str) -> dict[str, dict[str, Any]]:
    found = next(e for e in journey["events"] if e["event"] == event)
    return {d["sink"]: d for d in found["deliveries"]}


async def settled(st: Stack, vid: str, count: int = 2) -> dict[str, Any]:
    """The journey once `count` events are in it and none of their deliveries is open."""
    async def check() -> dict[str, Any] | None:
        status, body = await api(st, f"/api/journeys/{vid}")
        if status != 200 or len(body["events"]) < count:
            return None
        open_ = [d for e in body["events"] for d in e["deliveries"]
                 if d["status"] in ("pending", "leased", "retry")]
        return None if open_ else body
    return await until(check, f"every delivery of {vid} final")


async def test_a_journey_shows_click_ids_events_rules_and_deliveries(s: Stack) -> None:
    tlr = str(uuid.uuid4())
    async with s.session() as c:
        vid = await visit(c, f"tlr_sid={tlr}&gclid=G-1")
    journey = await settled(s, vid)
    assert journey["linksClickedId"] == vid and journey["preview"] is False
    assert journey["click_ids"] == {"tlr_sid": tlr, "gclid": "G-1"}
    assert journey["first_seen"] > 0
    completed = next(e for e in journey["events"] if e["event"] == "ApplicationCompleted")
    assert completed["rule"] == "application submitted"
    assert completed["job_name"] == "Warehouse Associate" and completed["job_id"] == "2"
    assert completed["url"].endswith("/jobs/2/apply") and completed["preview"] is False
    for sink in ("talroo", "meta", "ats"):
        d = deliveries(journey, "ApplicationCompleted")[sink]
        assert d["status"] == "sent" and d["attempts"] == 1 and d["last_code"] == 200, d
        assert d["id"].isdigit() and d["updated_at"] >= completed["time"]
    assert set(deliveries(journey, "ConversationStart")) == {"meta", "ats"}
    assert [e["event"] for e in journey["events"]] == ["ApplicationCompleted",
                                                       "ConversationStart"]   # newest first

    assert (await api(s, f"/api/journeys?click={tlr}")) == (200, {"journeys": [vid]})
    assert (await api(s, "/api/journeys?click=G-1")) == (200, {"journeys": [vid]})
    assert (await api(s, "/api/journeys?click=nobody")) == (200, {"journeys": []})

    status, events = await api(s, "/api/events?limit=1")
    assert status == 200 and len(events["events"]) == 1
    assert events["events"][0]["event_id"] == completed["event_id"]
    assert events["events"][0]["linksClickedId"] == vid

    status, body = await api(s, "/api/rules")
    by_name = {r["name"]: r for r in body["rules"]}
    assert by_name["application submitted"]["hits"] == 1
    assert by_name["application submitted"]["event"] == "ApplicationCompleted"
    assert by_name["application submitted"]["last_fired"] >= completed["time"] - 1
    assert by_name["apply form viewed"]["hits"] == 1

    status, body = await api(s, "/api/sinks?hours=2")
    sent = {}
    for row in body["rows"]:
        assert row["hour"] % 3600 == 0
        sent[row["sink"]] = sent.get(row["sink"], 0) + row["sent"]
    assert body["hours"] == 2 and sent == {"talroo": 1, "meta": 2, "ats": 2}


async def test_a_rejected_delivery_is_a_dead_letter_and_a_retry_sends_it(s: Stack) -> None:
    s.recorder.fail_next("/hooks/ats", 400, times=1, body='{"error": "bad payload: ' +
                         "x" * 900 + '"}')
    async with s.session() as c:
        vid = await visit(c, f"tlr_sid={uuid.uuid4()}", apply=False)
    journey = await settled(s, vid, count=1)
    dead = deliveries(journey, "ConversationStart")["ats"]
    assert dead["status"] == "dead" and dead["last_code"] == 400 and dead["attempts"] == 1
    assert dead["last_body"].startswith('{"error": "bad payload: xxx') and \
        len(dead["last_body"]) == 500

    status, body = await api(s, "/api/dead")
    assert status == 200 and [d["id"] for d in body["dead"]] == [dead["id"]]
    letter = body["dead"][0]
    assert letter["event"] == "ConversationStart" and letter["linksClickedId"] == vid
    assert letter["sink"] == "ats" and letter["last_body"] == dead["last_body"]

    sent = deliveries(journey, "ConversationStart")["meta"]
    assert await api(s, f"/api/outbox/{sent['id']}/retry", "POST") == (
        409, {"error": "only a dead letter can be retried", "status": "sent"})
    assert (await api(s, "/api/outbox/999999/retry", "POST"))[0] == 404

    assert await api(s, f"/api/outbox/{dead['id']}/retry", "POST") == (
        200, {"id": dead["id"], "status": "pending"})
    journey = await settled(s, vid, count=1)
    again = deliveries(journey, "ConversationStart")["ats"]
    assert again["status"] == "sent" and again["last_code"] == 200 and again["id"] == dead["id"]
    assert (await api(s, "/api/dead"))[1] == {"dead": []}
    status, body = await api(s, "/api/sinks")
    ats = [r for r in body["rows"] if r["sink"] == "ats"]
    assert sum(r["dead"] for r in ats) == 1 and sum(r["sent"] for r in ats) == 1


async def hire(st: Stack, vid: str, job: str) -> None:
    """The ATS reports a hire through the events API."""
    async with st.session() as c, c.post("/_edge/api/events", json={
            "event": "Hire", "linksClickedId": vid, "jobName": job},
            headers={"Authorization": "Bearer api-secret"}) as r:
        assert r.status == 202, await r.text()


async def test_the_funnel_counts_by_source_and_by_job(s: Stack) -> None:
    async with s.session() as c:          # talroo, applies to job 2, is hired
        hired = await visit(c, f"tlr_sid={uuid.uuid4()}", "2", "Warehouse Associate")
    async with s.session() as c:          # talroo, only opens job 3's form
        await visit(c, f"tlr_sid={uuid.uuid4()}", "3", "Registered Nurse", apply=False)
    async with s.session() as c:          # google, applies to job 3
        await visit(c, "gclid=G-1", "3", "Registered Nurse")
    async with s.session() as c:          # a preview visitor: counts nowhere
        async with c.get("/_edge/preview?token=let-me-see") as r:
            assert r.status == 200
        tester = await visit(c, f"tlr_sid={uuid.uuid4()}", "2", "Warehouse Associate")
    await s.edge.journeys.flush()
    await hire(s, hired, "Warehouse Associate")
    await hire(s, tester, "Warehouse Associate")      # a tester's hire is a test too

    status, body = await api(s, "/api/funnel?days=2")
    assert status == 200 and body["by"] == "source" and body["days"] == 2
    assert body["steps"] == ["clicks", "ConversationStart", "ApplicationCompleted", "Hire"]
    rows = {r["key"]: r for r in body["rows"]}
    day = body["rows"][0]["day"]
    assert rows == {
        "tlr_sid": {"day": day, "key": "tlr_sid", "clicks": 2, "ConversationStart": 2,
                    "ApplicationCompleted": 1, "Hire": 1},
        "gclid": {"day": day, "key": "gclid", "clicks": 1, "ConversationStart": 1,
                  "ApplicationCompleted": 1, "Hire": 0}}

    status, body = await api(s, "/api/funnel?by=job")
    rows = {r["key"]: r for r in body["rows"]}
    assert body["days"] == 30
    # the form's job_title names the job; opening a form names none (no job_name rule)
    assert rows["Warehouse Associate"]["ApplicationCompleted"] == 1
    assert rows["Warehouse Associate"]["Hire"] == 1
    assert rows["Registered Nurse"]["ApplicationCompleted"] == 1
    assert sum(r["ConversationStart"] for r in rows.values()) == 3
    status, journey = await api(s, f"/api/journeys/{tester}")
    assert [(e["event"], e["preview"]) for e in journey["events"]][0] == ("Hire", True)
    assert journey["events"][0]["deliveries"][0]["status"] == "skipped"    # the webhook


async def test_the_stream_carries_the_conversion_and_its_deliveries(s: Stack) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    lines: list[str] = []
    async with s.admin() as c, c.get("/_edge/api/stream") as r:
        assert r.status == 200 and r.content_type == "text/event-stream"

        async def read_until(done: Callable[[], bool]) -> None:
            kind = ""
            while not done():
                line = (await r.content.readline()).decode().rstrip("\n")
                lines.append(line)
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    seen.append((kind, orjson.loads(line[6:])))

        async with s.session() as c2:
            vid = await visit(c2, f"tlr_sid={uuid.uuid4()}")

        def complete() -> bool:
            sent = {d["sink"] for k, d in seen if k == "delivery" and d["status"] == "sent"}
            return any(k == "conversion" and d["event"] == "ApplicationCompleted"
                       for k, d in seen) and {"talroo", "meta", "ats"} <= sent

        await asyncio.wait_for(read_until(complete), WAIT)
    assert lines[0] == "retry: 2000"
    conv = next(d for k, d in seen if k == "conversion" and d["event"] == "ApplicationCompleted")
    assert conv["linksClickedId"] == vid and conv["rule"] == "application submitted"
    assert {d["sink"]: d["status"] for d in conv["deliveries"]} == {
        "talroo": "pending", "meta": "pending", "ats": "pending"}
    talroo = next(d for k, d in seen if k == "delivery" and d["sink"] == "talroo")
    assert talroo["event_id"] == conv["event_id"] and talroo["last_code"] == 200
    async def let_go() -> bool:
        return s.edge.live.subscribers == 0
    await until(let_go, "the closed stream let go")


async def test_the_stream_pings_and_ends_when_the_proxy_shuts_down(
        s: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_stream, "PING_SECONDS", 0.05)
    async with s.admin() as c, c.get("/_edge/api/stream") as r:
        assert await r.content.readline() == b"retry: 2000\n"
        assert await r.content.readline() == b"\n"
        assert await r.content.readline() == b": ping\n"
        s.edge.live.close()
        assert await asyncio.wait_for(r.content.read(), WAIT) in (b"\n", b"")


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_preview_visitors_send_test_events_only(s: Stack) -> None:
    async with s.session() as c:
        for query in ("", "?token=", "?token=let-me-se", "?token=let-me-see-x"):
            async with c.get("/_edge/preview" + query) as r:
                assert r.status == 403 and "set-cookie" not in r.headers
        async with c.get("/_edge/preview?token=let-me-see") as r:
            assert r.status == 200 and "Preview is on" in await r.text()
            cookie = r.headers["Set-Cookie"]
            assert r.headers["Referrer-Policy"] == "no-referrer"
        assert cookie.startswith("ce_preview=") and "Max-Age=3600" in cookie
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        vid = await visit(c, f"tlr_sid={uuid.uuid4()}")
    async with s.session() as c:           # a forged preview cookie is no preview
        c.cookie_jar.update_cookies({"ce_preview": "9999999999.AAAAAAAAAAAAAAAAAAAAAA"})
        plain = await visit(c, f"tlr_sid={uuid.uuid4()}")

    journey = await settled(s, vid)
    assert journey["preview"] is True and all(e["preview"] for e in journey["events"])
    got = deliveries(journey, "ApplicationCompleted")
    assert {k: d["status"] for k, d in got.items()} == {
        "talroo": "skipped", "meta": "sent", "ats": "skipped"}
    assert got["talroo"]["id"] is None
    other = await settled(s, plain)
    assert other["preview"] is False
    assert {d["status"] for d in deliveries(other, "ApplicationCompleted").values()} == {"sent"}

    meta = [r.json() for r in s.recorder.of("meta")]
    tests = [e["event_name"] for m in meta if m.get("test_event_code") == "TEST4242"
             for e in m["data"]]
    plain_events = [e["event_name"] for m in meta if "test_event_code" not in m
                    for e in m["data"]]
    assert sorted(tests) == ["ApplicationCompleted", "ConversationStart"]
    assert sorted(plain_events) == ["ApplicationCompleted", "ConversationStart"]
    assert len(s.recorder.of("talroo")) == 1           # the plain visitor's only
    text = await s.metrics()
    assert metric(text, "edge_conversions_total", sink="talroo", outcome="skipped") == 1
    assert metric(text, "edge_conversions_total", sink="ats", outcome="skipped") == 2

    await s.edge.journeys.flush()
    status, body = await api(s, "/api/funnel")
    assert [(r["key"], r["clicks"], r["ApplicationCompleted"]) for r in body["rows"]] == [
        ("tlr_sid", 1, 1)]


async def test_without_a_preview_token_there_is_no_preview_link(tmp_path) -> None:
    async with stack(build_site, rules(admin=""), tmp=tmp_path) as st, st.session() as c:
        async with c.get("/_edge/preview?token=anything") as r:
            assert r.status == 404 and "set-cookie" not in r.headers


ADMIN_PATHS = ("/api/journeys/" + "a" * 32, "/api/journeys?click=x", "/api/events",
               "/api/funnel", "/api/sinks", "/api/dead", "/api/rules", "/api/stream")


async def test_the_admin_token_guards_every_endpoint(tmp_path) -> None:
    admin = 'token = "ops-secret"'
    async with stack(build_site, rules(admin=admin), tmp=tmp_path) as st:
        for path in ADMIN_PATHS:
            assert (await api(st, path))[0] == 401, path
            assert (await api(st, path, token="wrong"))[0] == 401, path
        assert (await api(st, "/api/outbox/1/retry", "POST"))[0] == 401
        for path in ADMIN_PATHS[1:-1]:
            assert (await api(st, path, token="ops-secret"))[0] == 200, path
        assert (await api(st, ADMIN_PATHS[0], token="ops-secret"))[0] == 404
        assert (await api(st, "/api/outbox/1/retry", "POST", token="ops-secret"))[0] == 404
        async with st.admin() as c, c.get("/_edge/api/stream",
                                          headers={"Authorization": "Bearer ops-secret"}) as r:
            assert r.status == 200 and await r.content.readline() == b"retry: 2000\n"
        async with st.session() as c:           # and none of it on the public listener
            for path in ADMIN_PATHS[:-1]:
                async with c.get("/_edge" + path) as r:
                    assert r.status in (404, 405), path


HOSTILE = (
    ("GET", "/api/journeys/", 404), ("GET", "/api/journeys/..%2F..%2Fetc%2Fpasswd", 404),
    ("GET", "/api/journeys/%00", 404), ("GET", "/api/journeys/" + "a" * 65, 404),
    ("GET", "/api/journeys/%3Cscript%3E", 404), ("GET", "/api/journeys/a'--" + "b" * 20, 404),
    ("GET", "/api/journeys/" + "a" * 32, 404), ("POST", "/api/journeys/" + "a" * 32, 405),
    ("GET", "/api/journeys?click=", 400), ("GET", "/api/journeys?click=" + "x" * 600, 400),
    ("GET", "/api/events?limit=-1", 400), ("GET", "/api/events?limit=abc", 400),
    ("GET", "/api/events?limit=%00", 400), ("GET", "/api/events?limit=99999999999", 400),
    ("GET", "/api/events?limit=%EF%BC%91", 400), ("GET", "/api/funnel?by=x", 400),
    ("GET", "/api/funnel?days=0", 400), ("GET", "/api/sinks?hours=1e3", 400),
    ("GET", "/api/dead?limit=0", 400), ("POST", "/api/outbox/abc/retry", 404),
    ("GET", "/api/outbox/1/retry", 405), ("POST", "/api/outbox/99999999999999999999/retry", 404),
    ("POST", "/api/outbox/-1/retry", 404), ("POST", "/api/outbox/1/retry/x", 404),
    ("POST", "/api/outbox/%31/retry", 404), ("POST", "/api/outbox/", 404),
)


async def test_hostile_ids_and_queries_are_refused_plainly(s: Stack) -> None:
    for method, path, expected in HOSTILE:
        raw = await raw_exchange(s.admin_url, (
            f"{method} /_edge{path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode())
        assert raw.split(b" ", 2)[1] == str(expected).encode(), (path, raw[:200])
        if expected != 405:
            assert b'{"error":' in raw, path


SEGMENT = st.lists(st.sampled_from(list("abcXYZ019-._~!$&'()*+,;=:@") + [
    "%27", "%2F", "%00", "%0d%0a", "%2e%2e", "%25", "%ff", "%C3%A9", "/", "//"]),
    max_size=40).map("".join)
QUERY_VALUE = st.one_of(st.text(max_size=20), st.integers(-10, 10**12).map(str))


@settings(deadline=None, max_examples=40,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=SEGMENT, value=QUERY_VALUE,
       endpoint=st.sampled_from(["GET /api/journeys/{s}", "POST /api/outbox/{s}/retry",
                                 "POST /api/outbox/1{s}", "GET /api/events?limit={v}",
                                 "GET /api/funnel?days={v}&by={s}", "GET /api/sinks?hours={v}",
                                 "GET /api/dead?limit={v}", "GET /api/journeys?click={s}"]))
async def test_any_id_or_query_gets_an_answer_never_a_server_error(
        tmp_path_factory: pytest.TempPathFactory, segment: str, value: str,
        endpoint: str) -> None:
    method, path = endpoint.split(" ")
    path = path.format(s=segment, v=quote(value, safe=""))
    async with stack(build_site, rules(), tmp=tmp_path_factory.mktemp("h"),
                     env={"PREVIEW_TOKEN": "t"}) as st_:
        raw = await raw_exchange(st_.admin_url, (
            f"{method} /_edge{path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode())
    code = int(raw.split(b" ", 2)[1])
    assert code in (200, 400, 404, 405), raw[:300]
