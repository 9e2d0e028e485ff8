"""The recorder's Indeed, Google Ads, LinkedIn and TikTok: their answers, and the one line
the demo prints for each conversion."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient

from proxy.demo.recorder import Recorder, describe

GOOGLE = "/v25/customers/1234567890:uploadClickConversions"
ACTION = "customers/1234567890/conversionActions/555"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder, aiohttp_client) -> TestClient:
    return await aiohttp_client(recorder.build_app())


async def token(client: TestClient, **form: str) -> str:
    resp = await client.post("/oauth/token", data=form)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 3600
    return doc["access_token"]


async def test_oauth_grants_and_refusals(client, recorder: Recorder) -> None:
    await token(client, grant_type="client_credentials", client_id="a", client_secret="b")
    await token(client, grant_type="refresh_token", client_id="a", client_secret="b",
                refresh_token="r")
    resp = await client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "client_id": "a", "client_secret": "b"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
    resp = await client.post("/oauth/token", data={"grant_type": "password"})
    assert resp.status == 400
    assert not any(r.is_conversion for r in recorder.requests)


async def test_google_ads_answers_partial_failure_by_index(client, recorder) -> None:
    bearer = await token(client, grant_type="refresh_token", client_id="a",
                         client_secret="b", refresh_token="r")
    conversions = [
        {"gclid": "g1", "conversionAction": ACTION,
         "conversionDateTime": "2026-12-01 10:00:00+01:00", "orderId": "o1"},
        {"gclid": "g2", "gbraid": "b2", "conversionAction": ACTION,
         "conversionDateTime": "2026-12-01 10:00:00+01:00", "orderId": "o2"},
        {"wbraid": "w3", "conversionAction": ACTION,
         "conversionDateTime": "2026-12-01T10:00:00Z", "orderId": "o3"},
    ]
    resp = await client.post(GOOGLE, json={"conversions": conversions, "partialFailure": True},
                             headers={"Authorization": f"Bearer {bearer}",
                                      "developer-token": "d"})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["results"][0] == {"gclid": "g1", "conversionAction": ACTION,
                                 "conversionDateTime": "2026-12-01 10:00:00+01:00"}
    assert doc["results"][1:] == [{}, {}]
    errors = doc["partialFailureError"]["details"][0]["errors"]
    assert [(e["location"]["fieldPathElements"][0]["index"], e["errorCode"]) for e in errors] == [
        (1, {"conversionUploadError": "EXACTLY_ONE_CLICK_ID"}),
        (2, {"dateError": "INVALID_STRING_DATE_TIME"})]
    resp = await client.post(GOOGLE, json={"conversions": conversions},
                             headers={"Authorization": f"Bearer {bearer}",
                                      "developer-token": "d"})
    assert resp.status == 400                    # partialFailure must be true
    line = describe(recorder.of("google_ads")[0])
    assert line.startswith("→ google_ads gclid=g1 order_id=o1")


async def test_each_network_prints_one_line_per_conversion(client, recorder) -> None:
    bearer = await token(client, grant_type="client_credentials", client_id="a",
                         client_secret="b")
    await client.post("/enterprise/conversions/v1/events", json=[
        {"event": "APPLY_COMPLETE", "guid": "g", "ittk": "it-1", "testFire": True}],
        headers={"Authorization": f"Bearer {bearer}"})
    li = {"conversion": "urn:lla:llaPartnerConversion:104",
          "conversionHappenedAt": int(time.time() * 1000), "eventId": "e1",
          "user": {"userIds": [{"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID",
                                "idValue": "li-1"}]}}
    headers = {"Authorization": "Bearer t", "LinkedIn-Version": "202603",
               "X-Restli-Protocol-Version": "2.0.0"}
    resp = await client.post("/rest/conversionEvents", json=li, headers=headers)
    assert resp.status == 201
    resp = await client.post("/rest/conversionEvents", json={"elements": [li, {**li,
                             "conversion": "urn:li:x"}]},
                             headers={**headers, "X-RestLi-Method": "BATCH_CREATE"})
    assert [e["status"] for e in (await resp.json())["elements"]] == [201, 400]
    resp = await client.post("/open_api/v1.3/event/track/", headers={"Access-Token": "t"},
                             json={"event_source": "web", "event_source_id": "P",
                                   "data": [{"event": "SubmitApplication", "event_time": 1,
                                             "event_id": "e1", "user": {"ttclid": "tt"}}]})
    assert (await resp.json())["code"] == 0
    resp = await client.post("/open_api/v1.3/event/track/", headers={"Access-Token": "t"},
                             json={"event_source": "web", "event_source_id": "P", "data": [
                                 {"event": "X", "event_time": 1, "user": {"external_id": "raw"}}]})
    assert resp.status == 200 and (await resp.json())["code"] == 40002
    lines = [describe(r) for r in recorder.requests if r.is_conversion]
    assert lines[0] == "→ indeed     APPLY_COMPLETE ittk=it-1 testFire"
    assert lines[1] == "→ linkedin   urn:lla:llaPartnerConversion:104 eventId=e1"
    assert lines[3] == "→ tiktok     SubmitApplication event_id=e1 ttclid=tt"
    assert all("\n" not in line for line in lines)


async def test_conversion_lines_align_whatever_the_network(client, recorder) -> None:
    bearer = await token(client, grant_type="refresh_token", client_id="a",
                         client_secret="b", refresh_token="r")
    await client.get("/conversion2.php?tlr_sid=s1&Link=true")
    await client.post(GOOGLE, json={"partialFailure": True, "conversions": [
        {"gclid": "g1", "conversionAction": ACTION,
         "conversionDateTime": "2026-12-01 10:00:00+01:00", "orderId": "o1"}]},
        headers={"Authorization": f"Bearer {bearer}", "developer-token": "d"})
    talroo, google = (describe(r) for r in recorder.requests if r.is_conversion)
    assert talroo.startswith("→ talroo ") and google.startswith("→ google_ads ")
    assert talroo.index("conversion2.php") == google.index("gclid=g1")
