"""The ad-network recorder over real sockets: what it records, answers and fails with."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.demo.recorder import RecordedRequest, Recorder, describe
from proxy.demo.site import serve

SID = "6f1c2a9e-8d3b-4c1a-9f0e-2b7d5a4c3e10"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder, aiohttp_client) -> TestClient:
    return await aiohttp_client(recorder.build_app())


def meta_event(**over) -> dict:
    event = {"event_name": "SubmitApplication", "event_time": int(time.time()),
             "event_id": "e-1", "action_source": "website",
             "event_source_url": "https://careers.example/jobs/1",
             "custom_data": {"jobName": "Welder"}}
    return {**event, **over}


async def test_talroo_conversion_is_recorded(client, recorder: Recorder) -> None:
    resp = await client.get(f"/conversion2.php?tlr_sid={SID}&Link=true",
                            headers={"User-Agent": "edge-test"})
    assert resp.status == 200
    [rec] = recorder.requests
    assert (rec.method, rec.path, rec.network, rec.status) == ("GET", "/conversion2.php",
                                                               "talroo", 200)
    assert rec.query["tlr_sid"] == SID and rec.query["Link"] == "true"
    assert rec.query_string == f"tlr_sid={SID}&Link=true"
    assert rec.headers["User-Agent"] == "edge-test" and rec.time > 0
    resp = await client.get("/conversion3.php?Link=true")
    assert resp.status == 400 and recorder.requests[-1].status == 400


async def test_meta_answers_like_the_conversions_api(client, recorder: Recorder) -> None:
    payload = {"data": [meta_event(), meta_event(event_id="e-2")], "access_token": "tok"}
    resp = await client.post("/v21.0/123456789012345/events", json=payload)
    answer = await resp.json()
    assert resp.status == 200
    assert answer["events_received"] == 2 and answer["messages"] == []
    assert answer["fbtrace_id"]
    [rec] = recorder.of("meta")
    assert rec.json() == payload and rec.path == "/v21.0/123456789012345/events"


@pytest.mark.parametrize("payload, status", [
    ({"data": [meta_event()]}, 401),                                        # no token
    ({"data": [meta_event(event_time=int(time.time()) - 8 * 86400), meta_event()],
      "access_token": "t"}, 400),                                           # one stale: all out
    ({"data": [meta_event(event_time=str(int(time.time())))], "access_token": "t"}, 400),
    ({"data": [meta_event(event_name="")], "access_token": "t"}, 400),
    ({"data": [meta_event(event_source_url=None)], "access_token": "t"}, 400),
    ({"data": [], "access_token": "t"}, 400),
    ({"data": [meta_event()] * 1001, "access_token": "t"}, 400),
    ({"access_token": "t"}, 400),
])
async def test_meta_rejects_what_meta_rejects(client, payload: dict, status: int) -> None:
    resp = await client.post("/v21.0/1/events", json=payload)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["message"] and error["fbtrace_id"]


async def test_meta_lenient_mode_accepts_any_data_list(aiohttp_client) -> None:
    recorder = Recorder(strict=False)
    client = await aiohttp_client(recorder.build_app())
    resp = await client.post("/v21.0/1/events", json={"data": [{"x": 1}]})
    assert resp.status == 200 and (await resp.json())["events_received"] == 1


async def test_webhook_records_headers_and_checks_signatures(client, recorder) -> None:
    body = json.dumps({"event": "ApplicationCompleted", "jobName": "Welder"}).encode()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    resp = await client.post("/hooks/ats", data=body, headers={
        "Content-Type": "application/json", "X-Careers-Edge-Signature": good})
    assert resp.status == 200
    [rec] = recorder.of("webhook")
    assert rec.body == body and rec.headers["Content-Type"] == "application/json"
    assert rec.signature_valid("s3cret")
    assert not rec.signature_valid("other")
    await client.post("/hooks/ats", data=body)
    assert not recorder.requests[-1].signature_valid("s3cret")


async def test_appcast_serves_pixels_and_accepts_events(client, recorder: Recorder) -> None:
    resp = await client.get("/appcast/pixels/acme-1.js?ent=demo")
    assert resp.content_type == "application/javascript" and b"appcastPixel" in await resp.read()
    resp = await client.get("/appcast/acme/a31.png?ent=demo&e=apply")
    assert resp.content_type == "image/gif" and (await resp.read()).startswith(b"GIF89a")
    resp = await client.get("/appcast/events?e=ApplicationCompleted&click=c1")
    assert resp.status == 200
    assert [r.query.get("e") for r in recorder.of("appcast")] == [None, "apply",
                                                                 "ApplicationCompleted"]
    assert [r.is_conversion for r in recorder.of("appcast")] == [False, False, True]


async def test_unknown_paths_are_recorded_too(client, recorder: Recorder) -> None:
    resp = await client.put("/somewhere/else", data=b"x")
    assert resp.status in (404, 405)
    [rec] = recorder.requests
    assert (rec.network, rec.body, rec.status) == ("other", b"x", resp.status)
    assert not rec.is_conversion


async def test_fail_next_scripts_an_outage_with_retry_after(client, recorder) -> None:
    recorder.fail_next("/conversion2.php", 503, times=2, retry_after=7, body="busy")
    url = f"/conversion2.php?tlr_sid={SID}&Link=true"
    for _ in range(2):
        resp = await client.get(url)
        assert resp.status == 503 and resp.headers["Retry-After"] == "7"
        assert await resp.text() == "busy"
        other = await client.get(f"/conversion.php?tlr_sid={SID}")   # another prefix: fine
        assert other.status == 200
    resp = await client.get(url)
    assert resp.status == 200 and "Retry-After" not in resp.headers
    assert [r.status for r in recorder.of("talroo") if r.path == "/conversion2.php"] == [
        503, 503, 200]


async def test_fail_next_429_without_retry_after_and_queued_in_order(client, recorder) -> None:
    recorder.fail_next("/v21.0", 429)
    recorder.fail_next("/v21.0", 500)
    statuses = []
    for _ in range(3):
        resp = await client.post("/v21.0/1/events", json={"data": [meta_event()],
                                                          "access_token": "t"})
        statuses.append(resp.status)
        assert "Retry-After" not in resp.headers
    assert statuses == [429, 500, 200]


async def test_fail_next_can_drop_the_connection(client, recorder: Recorder) -> None:
    recorder.fail_next("/hooks/", disconnect=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post("/hooks/ats", json={"event": "X"})
    resp = await client.post("/hooks/ats", json={"event": "X"})
    assert resp.status == 200
    assert [r.status for r in recorder.of("webhook")] == [0, 200]


async def test_wait_for_sees_requests_that_arrive_later(client, recorder) -> None:
    waiter = asyncio.create_task(recorder.wait_for(lambda r: r.network == "meta", timeout=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await client.get(f"/conversion2.php?tlr_sid={SID}")        # not the one awaited
    await client.post("/v21.0/1/events", json={"data": [meta_event()], "access_token": "t"})
    rec = await waiter
    assert rec.network == "meta"
    # Already recorded: answered at once; and counts.
    assert (await recorder.wait_for(lambda r: r.network == "talroo")).path == "/conversion2.php"
    both = await recorder.wait_for_all(None, count=2)
    assert [r.network for r in both] == ["talroo", "meta"]


async def test_wait_for_times_out_when_nothing_comes(recorder: Recorder) -> None:
    with pytest.raises(TimeoutError):
        await recorder.wait_for(lambda r: r.network == "talroo", timeout=0.05)


async def test_on_request_callback_sees_each_request_in_one_readable_line() -> None:
    lines: list[str] = []
    seen: list[RecordedRequest] = []

    async def keep(rec: RecordedRequest) -> None:
        seen.append(rec)
        lines.append(describe(rec))

    recorder = Recorder(on_request=keep)
    runner, base = await serve(lambda _url: recorder.build_app())
    try:
        recorder.fail_next("/hooks/", 502)
        async with aiohttp.ClientSession() as session:
            await (await session.get(f"{base}/conversion2.php?tlr_sid={SID}&Link=true")).read()
            await (await session.post(f"{base}/v21.0/1/events", json={
                "data": [meta_event()], "access_token": "t"})).read()
            await (await session.post(f"{base}/hooks/ats", json={
                "event": "ApplicationCompleted", "jobName": "Welder"})).read()
    finally:
        await runner.cleanup()
    assert seen == recorder.requests
    assert lines[0] == f"→ talroo     conversion2.php  tlr_sid={SID}"
    assert lines[1].startswith("→ meta") and "SubmitApplication" in lines[1]
    assert "jobName='Welder'" in lines[1]
    assert lines[2].startswith("✗ 502 webhook") and "ApplicationCompleted" in lines[2]
    assert all("\n" not in line for line in lines)


async def test_clear_forgets_requests_and_scripted_failures(client, recorder) -> None:
    recorder.fail_next("/conversion", 503, times=5)
    await client.get(f"/conversion.php?tlr_sid={SID}")
    recorder.clear()
    assert recorder.requests == []
    assert (await client.get(f"/conversion.php?tlr_sid={SID}")).status == 200
