"""Signed webhooks: the receiver can verify the exact bytes it got."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import orjson
from test_conversions_recorder import Recorder

from proxy.config.model import Sink
from proxy.conversions.backoff import Sent
from proxy.conversions.events import Event
from proxy.conversions.sinks import build_sink
from proxy.conversions.sinks.webhook import verify


async def test_signature_verifies_and_body_has_the_documented_keys(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    sink = Sink("ats", "webhook", url=rec.url("/hooks"), secret="s3cret",
                headers={"X-Tenant": "acme"}, event_names={"Hire": "hired"})
    e = Event("Hire", event_id="ev-1", event_time=1_700_000_000.5, links_clicked_id="L1",
              click_ids={"tlr_sid": "t", "gclid": "g"}, job_id="42", job_name="Nurse ü",
              url="https://careers.acme.example/x", user_agent="UA")
    async with aiohttp.ClientSession() as s:
        assert await build_sink(sink).send(s, [e]) == [Sent()]
    (req,) = rec.requests
    assert req.method == "POST" and req.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Careers-Edge-Signature"] == expected
    assert verify("s3cret", req.body, req.headers["X-Careers-Edge-Signature"])
    assert not verify("other", req.body, req.headers["X-Careers-Edge-Signature"])
    assert req.headers["Idempotency-Key"] == "ev-1" and req.headers["X-Tenant"] == "acme"
    assert orjson.loads(req.body) == {
        "event": "hired", "event_id": "ev-1", "event_time": 1_700_000_000,
        "linksClickedId": "L1", "click_ids": {"tlr_sid": "t", "gclid": "g"},
        "jobName": "Nurse ü", "job_id": "42", "url": "https://careers.acme.example/x",
        "user_agent": "UA"}
