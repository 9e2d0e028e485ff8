"""POST {prefix}/api/events over HTTP: auth, validation, visitor lookup, idempotency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from test_conversions_recorder import Recorder

from proxy.config.model import ApiSection, Config, ConsentSection, ProxySection, Sink
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.endpoints.events_api import events_api_handler
from proxy.metrics import Metrics

SID = "0f8e2c1a-1b2c-4d5e-8f90-123456789abc"
PATH = "/_edge/api/events"


@dataclass
class Click:
    value: str
    seen_at: float


@dataclass
class Journey:
    links_clicked_id: str
    click_ids: dict[str, Click] = field(default_factory=dict)


class Journeys:
    """An in-memory journey store: the state module's lookup is not what is tested here."""

    def __init__(self, *journeys: Journey) -> None:
        self.by_id = {j.links_clicked_id: j for j in journeys}

    async def get(self, links_clicked_id):
        return self.by_id.get(links_clicked_id)

    async def find_by_click(self, param, value):
        return next((j for j in self.by_id.values()
                     if (c := j.click_ids.get(param)) and c.value == value), None)


VISITOR = Journey("L1", {"tlr_sid": Click(SID, 1_700_000_000.0),
                         "fbclid": Click("IwAR0x", 1_700_000_000.25)})


class Setup:
    def __init__(self, client, outbox: SqliteOutbox, holder: dict) -> None:
        self.client, self.outbox, self.holder = client, outbox, holder

    async def post(self, body, token: str | None = "tok", raw: bytes | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else orjson.dumps(body)
        resp = await self.client.post(PATH, data=data, headers=headers)
        return resp.status, await resp.json(), resp


def config(sinks, token="tok", consent_required=False, send_to=None) -> Config:
    return Config(proxy=ProxySection(upstream="http://upstream.example"),
                  sinks={s.name: s for s in sinks}, api=ApiSection(token=token, send_to=send_to),
                  consent=ConsentSection(required=consent_required))


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    outbox = SqliteOutbox(str(tmp_path / "state.db"), metrics=Metrics())
    holder = {"config": config([Sink("talroo", "talroo", url="http://t.example/c2.php",
                                     events={"Hire": "http://t.example/c3.php"})])}
    app = web.Application()
    app.router.add_post(PATH, events_api_handler(lambda: holder["config"], outbox,
                                                 Journeys(VISITOR)))
    client = await aiohttp_client(app)
    yield Setup(client, outbox, holder)
    await outbox.close()


async def test_without_a_valid_token_401(api):
    for token in (None, "wrong", ""):
        status, body, resp = await api.post({"event": "Hire", "linksClickedId": "L1"}, token)
        assert status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in body["error"]
    resp = await api.client.post(PATH, data=b"{}", headers={"Authorization": "Basic dG9r"})
    assert resp.status == 401
    assert await api.outbox.pending_count() == 0


async def test_disabled_without_a_configured_token(api):
    api.holder["config"] = config([], token=None)
    status, body, _ = await api.post({"event": "Hire", "linksClickedId": "L1"}, "anything")
    assert status == 404 and "disabled" in body["error"]


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"linksClickedId": "L1"}', "missing event"),
    (b'{"event": 5, "linksClickedId": "L1"}', "event must be"),
    (b'{"event": "Hire"}', "linksClickedId or click_ids"),
    (b'{"event": "Hire", "click_ids": ["x"]}', "click_ids must be"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_time": "yesterday"}', "event_time"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_time": true}', "event_time"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_time": 1000}', "older than 7 days"),
    (b'{"event": "Hire", "linksClickedId": "L1", "jobname": "x"}', "unknown key 'jobname'"),
    (b'{"event": "Hire me", "linksClickedId": "L1"}', "is not an event name"),
    (b'{"event": "1Hire", "linksClickedId": "L1"}', "is not an event name"),
    (b'{"event": "Hire\\n", "linksClickedId": "L1"}', "is not an event name"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_id": "a\\nb"}', "event_id must be"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_id": "a b"}', "event_id must be"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_id": "caf\\u00e9"}', "event_id must"),
    (b'{"event": "Hire", "linksClickedId": "L1", "event_id": "' + b"x" * 65 + b'"}',
     "event_id must be"),
])
async def test_bad_bodies_get_400_with_the_reason(api, payload, reason):
    status, body, _ = await api.post(None, raw=payload)
    assert status == 400 and reason in body["error"]


async def test_an_event_time_in_the_future_is_refused(api):
    status, body, _ = await api.post({"event": "Hire", "linksClickedId": "L1",
                                      "event_time": time.time() + 3600})
    assert status == 400 and "future" in body["error"]


async def test_unknown_visitor_404(api):
    status, body, _ = await api.post({"event": "Hire", "linksClickedId": "nobody"})
    assert (status, body) == (404, {"error": "unknown visitor"})
    status, _, _ = await api.post({"event": "Hire", "click_ids": {"tlr_sid": "other"}})
    assert status == 404


async def test_202_queues_the_event_with_the_journeys_click_ids(api):
    t = time.time() - 3600
    status, body, _ = await api.post({"event": "Hire", "linksClickedId": "L1", "jobName": "Nurse",
                                      "job_id": "42", "event_time": t,
                                      "fields": {"salary": "50k"}})
    assert status == 202 and len(body["event_id"]) == 32
    (row,) = await api.outbox.list_rows()
    e = row.event
    assert (row.sink, e.name, e.event_id, e.event_time) == ("talroo", "Hire", body["event_id"], t)
    assert e.links_clicked_id == "L1" and e.click_ids == {"tlr_sid": SID, "fbclid": "IwAR0x"}
    assert (e.job_id, e.job_name, e.fields) == ("42", "Nurse", {"salary": "50k"})
    assert e.fbc == "fb.1.1700000000250.IwAR0x"


async def test_found_by_click_id_when_the_cookie_id_is_unknown(api):
    status, _, _ = await api.post({"event": "Hire", "click_ids": {"tlr_sid": SID}})
    assert status == 202
    (row,) = await api.outbox.list_rows()
    assert row.event.links_clicked_id == "L1"


async def test_an_event_id_of_64_printable_characters_is_taken(api):
    event_id = "ats:hire/77-" + "x" * 52
    status, body, _ = await api.post({"event": "Hire", "linksClickedId": "L1",
                                      "event_id": event_id})
    assert (status, body) == (202, {"event_id": event_id})


async def test_idempotent_by_event_id(api):
    payload = {"event": "Hire", "linksClickedId": "L1", "event_id": "ats-hire-77", "job_id": "9"}
    first = await api.post(payload)
    second = await api.post(payload)
    assert first[:2] == second[:2] == (202, {"event_id": "ats-hire-77"})
    assert await api.outbox.pending_count() == 1


async def test_consent_required_suppresses_marketing_sinks(api):
    api.holder["config"] = config([Sink("talroo", "talroo"),
                                   Sink("ats", "webhook", url="http://h/", marketing=False)],
                                  consent_required=True)
    status, _, _ = await api.post({"event": "Hire", "linksClickedId": "L1"})
    assert status == 202
    assert [r.sink for r in await api.outbox.list_rows()] == ["ats"]


async def test_api_send_to_picks_the_sinks(api):
    sinks = [Sink("talroo", "talroo"), Sink("ats", "webhook", url="http://h/")]
    api.holder["config"] = config(sinks, send_to=("ats",))
    assert (await api.post({"event": "Hire", "linksClickedId": "L1"}))[0] == 202
    api.holder["config"] = config(sinks, send_to=())
    assert (await api.post({"event": "Hire", "linksClickedId": "L1", "job_id": "2"}))[0] == 202
    assert [r.sink for r in await api.outbox.list_rows()] == ["ats"]


async def test_a_hire_reaches_talroos_event_3_endpoint(aiohttp_server, api):
    rec = await Recorder.start(aiohttp_server)
    sink = Sink("talroo", "talroo", url=rec.url("/conversion2.php"),
                events={"Hire": rec.url("/conversion3.php")})
    api.holder["config"] = config([sink])
    d = Dispatcher(api.outbox, {"talroo": sink}, poll_interval=0.05)
    await d.start()
    try:
        status, _, _ = await api.post({"event": "Hire", "linksClickedId": "L1", "event_id": "h1"})
        await api.post({"event": "Hire", "linksClickedId": "L1", "event_id": "h1"})
        await rec.wait_for(1)
    finally:
        await d.stop()
    (req,) = rec.requests
    assert status == 202 and req.raw_path == f"/conversion3.php?tlr_sid={SID}&Link=true"
