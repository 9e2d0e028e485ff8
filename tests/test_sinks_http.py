"""Templated HTTP sink: placeholders, URL encoding, body escaping."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conversions_recorder import Recorder

from proxy.config.model import Sink
from proxy.conversions.backoff import Sent
from proxy.conversions.events import Event
from proxy.conversions.sinks.http import HttpSink, placeholder_errors

TEMPLATE = "?e={event}&click={click.ccuid}&job={job_id}&t={event_time_ms}&n={jobName}"


def appcast(url: str, **kw) -> Sink:
    return Sink("appcast", "http", url=url + TEMPLATE, requires=("ccuid",),
                event_names={"ApplicationCompleted": "apply"}, **kw)


def event(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "event_id": "e1", "event_time": 1_700_000_000.123,
            "links_clicked_id": "L1", "click_ids": {"ccuid": "c/1&x=2"}, "job_id": "42",
            "job_name": "Nurse & Co 100% ü"}
    base.update(kw)
    return Event(**base)


async def test_get_template_lands_url_encoded_over_the_wire(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    sink = appcast(rec.url("/ev"))
    async with aiohttp.ClientSession() as s:
        assert await HttpSink(sink).send(s, [event()]) == [Sent()]
    (req,) = rec.requests
    assert req.method == "GET"
    assert req.raw_path == ("/ev?e=apply&click=c%2F1%26x%3D2&job=42&t=1700000000123"
                            "&n=Nurse%20%26%20Co%20100%25%20%C3%BC")
    assert req.query["click"] == "c/1&x=2" and req.headers["Idempotency-Key"] == "e1"


async def test_json_body_template_is_json_escaped(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    sink = Sink("x", "http", method="POST", url=rec.url("/hire"),
                headers={"Authorization": "Bearer k"},
                body='{"type": "{event}", "job": "{jobName}", "t": {event_time}, '
                     '"c": "{click.ccuid}", "missing": "{click.nope}", "keep": "{other}"}')
    e = event(job_name='say "hi"\n\\')
    async with aiohttp.ClientSession() as s:
        await HttpSink(sink).send(s, [e])
    (req,) = rec.requests
    assert req.method == "POST" and req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == "Bearer k"
    assert orjson.loads(req.body) == {"type": "ApplicationCompleted", "job": 'say "hi"\n\\',
                                      "t": 1700000000, "c": "c/1&x=2", "missing": "",
                                      "keep": "{other}"}


async def test_form_body_is_percent_encoded(aiohttp_server):
    rec = await Recorder.start(aiohttp_server)
    sink = Sink("x", "http", method="POST", url=rec.url("/f"), body="job={jobName}&id={event_id}",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    async with aiohttp.ClientSession() as s:
        await HttpSink(sink).send(s, [event()])
    assert parse_qs(rec.requests[0].body.decode()) == {"job": ["Nurse & Co 100% ü"],
                                                       "id": ["e1"]}


def test_placeholder_errors_name_unknown_ones():
    assert placeholder_errors(TEMPLATE) == []
    assert placeholder_errors("{evnt}&{click.x}&{field.y}") == ["unknown placeholder {evnt}"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40), st.text(min_size=1, max_size=40))
def test_any_value_round_trips_through_the_url(job_name, click):
    url, _, _ = HttpSink(appcast("http://h.example/ev")).build(
        event(job_name=job_name, click_ids={"ccuid": click}))
    raw = str(url)
    assert " " not in raw and "\n" not in raw and "#" not in urlsplit(raw).query
    q = parse_qs(urlsplit(raw).query, keep_blank_values=True)
    assert q["click"] == [click] and q["n"] == [job_name]
