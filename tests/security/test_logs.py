"""What the logs say, and what they never say (`[log]`).

The access log as a real proxy writes it (JSON lines, nginx combined), its request
id (sent upstream; a visitor's own only from a trusted proxy), health checks left
out; redaction of click ids, e-mail addresses and tokens in URLs, referers and app
log lines, with Hypothesis generating the values that must never appear.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from urllib.parse import quote, quote_plus

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proxy.access_log import AccessLog
from proxy.app_log import JsonFormatter, RedactFilter, TextFormatter
from proxy.redact import REDACTED, Redactor
from tests.integration.harness import stack
from tests.integration.upstreams import echo_app

PARAMS = ("tlr_sid", "fbclid", "gclid", "ccuid")
R = Redactor(PARAMS)
TLR = str(uuid.uuid4())
CLICK_VALUE = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
                      min_size=8, max_size=60)


# -- the redactor -------------------------------------------------------------------

@pytest.mark.parametrize(("target", "expected"), [
    ("/jobs/1", "/jobs/1"),
    (f"/jobs/1?tlr_sid={TLR}&utm_source=x", "/jobs/1?tlr_sid=[redacted]&utm_source=x"),
    ("/a?FBCLID=IwAR1&gclid=", "/a?FBCLID=[redacted]&gclid="),
    ("/cb?code=4/0Ab&state=s1", "/cb?code=[redacted]&state=s1"),
    ("/x?access_token=t1&api_key=k2&apikey=k3&key=k4&page=2",
     "/x?access_token=[redacted]&api_key=[redacted]&apikey=[redacted]&key=[redacted]&page=2"),
    ("/apply?email=jane.doe%40acme.example&job=7", "/apply?email=[redacted]&job=7"),
    ("/unsubscribe/jane@acme.example/now", "/unsubscribe/[redacted]/now"),
    ("https://u:pw@ref.example/p?q=jane+doe%40x.io", "https://[redacted]@ref.example/p?q=[redacted]"),
])
def test_redacted_urls(target: str, expected: str) -> None:
    assert R.url(target) == expected


def test_redaction_off_passes_everything() -> None:
    off = Redactor(PARAMS, enabled=False)
    url = f"/x?tlr_sid={TLR}&email=a@b.co"
    assert off.url(url) == url and off.text(url) == url


@settings(max_examples=300, deadline=None)
@given(st.emails(), st.sampled_from(["path", "query", "query-plus", "raw-query", "referer"]))
def test_an_email_never_survives_a_url(email: str, where: str) -> None:
    url = {"path": f"/u/{quote(email, safe='@')}/x",
           "query": f"/apply?job=1&email={quote(email)}",
           "query-plus": f"/apply?email={quote_plus(email)}&job=1",
           "raw-query": f"/apply?job=1&email={email}",
           "referer": f"https://search.example/?q={quote_plus(email)}"}[where]
    out = R.url(url)
    for form in (email, quote(email), quote_plus(email), quote(email, safe="@")):
        assert form not in out


@settings(max_examples=300, deadline=None)
@given(CLICK_VALUE, st.sampled_from(PARAMS), st.sampled_from(["first", "middle", "last"]))
def test_a_click_id_never_survives_a_url(value: str, param: str, where: str) -> None:
    pairs = {"first": [f"{param}={value}", "job=1"], "middle": ["a=1", f"{param}={value}", "b=2"],
             "last": ["job=1", f"{param}={value}"]}[where]
    url = "/jobs/7?" + "&".join(pairs)
    message = f"upstream GET {url} failed"
    # A value the message holds anyway (Hypothesis found "upstream") proves nothing.
    assume(value not in url.replace(value, "") and message.count(value) == 1
           and value not in REDACTED)
    assert value not in R.url(url)
    assert value not in R.text(message)


@settings(max_examples=300, deadline=None)
@given(st.emails(), st.text(max_size=30), st.text(max_size=30))
def test_an_email_never_survives_a_log_message(email: str, before: str, after: str) -> None:
    message = f"{before} {email} {after}"
    assume(email not in message.replace(email, "", 1))
    assert email not in R.text(message)


@pytest.mark.parametrize("secret_text", [
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    '{"access_token": "EAAB123secret"}',
    "POST /events?token=abcd1234secret",
    "api_key=abcd1234secret rejected",
])
def test_tokens_never_survive_a_log_message(secret_text: str) -> None:
    out = R.text(secret_text)
    assert REDACTED in out
    for token in ("eyJhbGciOiJIUzI1NiJ9", "EAAB123secret", "abcd1234secret"):
        assert token not in out


# -- app log lines ------------------------------------------------------------------

def app_log(fmt: str, redactor: Redactor = R) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter(redactor))
    logger = logging.getLogger(f"test.logs.{fmt}.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, out


def fail_with(message: str) -> None:
    raise ValueError(message)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_line_per_record_tracebacks_included_and_redacted(fmt: str) -> None:
    logger, out = app_log(fmt)
    logger.warning("visitor %s came back\nwith tlr_sid=%s", "jane@acme.example", TLR)
    try:
        fail_with(f"cannot send to hooks?token=tok{TLR} for jane@acme.example")
    except ValueError:
        logger.exception("delivery failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    text = out.getvalue()
    assert TLR not in text and "jane@acme.example" not in text
    assert "Traceback" in text and "fail_with" in text
    if fmt == "json":
        first, second = (orjson.loads(line) for line in lines)
        assert set(first) == {"time", "level", "logger", "message"}
        assert first["level"] == "warning" and first["message"].startswith("visitor [redacted]")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
        assert second["message"] == "delivery failed" and "ValueError" in second["exc"]
    else:
        assert " WARNING " in lines[0] and "\\n" in lines[0]


# -- the access log of a real proxy -------------------------------------------------

async def access_lines(tmp_path, log: str, requests, *, proxy_extra: str = "") -> list[str]:
    """Run `requests(session, admin session)` through a proxy with `[log]` `log` (on its
    public and admin listeners); the lines it logged."""
    out = io.BytesIO()
    async with stack(echo_app(), f"[log]\n{log}\n", tmp=tmp_path, access_stream=out,
                     proxy_extra=proxy_extra) as s:
        async with s.session() as c, s.admin() as admin:
            await requests(c, admin)
        s.edge.access_log.flush()
    return out.getvalue().decode().splitlines()


async def get(c, path: str, **kw) -> dict:
    async with c.get(path, **kw) as r:
        assert r.status == 200
        return await r.json(content_type=None) if "/echo" in path else {}


async def test_json_lines_have_every_field_and_no_secret(tmp_path) -> None:
    seen: dict = {}

    async def requests(c, admin) -> None:
        seen["echo"] = await get(
            c, f"/echo/jobs/1?tlr_sid={TLR}&email=jane%40acme.example&page=2",
            headers={"Referer": "https://www.google.com/search?q=jane@acme.example",
                     "User-Agent": "Mozilla/5.0 test"})
        await get(c, "/_edge/healthz")
        for path in ("/_edge/healthz", "/_edge/readyz", "/_edge/metrics"):
            await get(admin, path)

    lines = await access_lines(tmp_path, 'access = "json"', requests)
    assert len(lines) == 1                         # health checks are not logged
    text = "\n".join(lines)
    assert TLR not in text and "jane" not in text
    rec = orjson.loads(lines[0])
    assert rec["uri"] == "/echo/jobs/1?tlr_sid=[redacted]&email=[redacted]&page=2"
    assert rec["referer"] == "https://www.google.com/search?q=[redacted]"
    assert rec["method"] == "GET" and rec["status"] == 200 and rec["protocol"] == "HTTP/1.1"
    assert rec["client"] == "127.0.0.1" and rec["user_agent"] == "Mozilla/5.0 test"
    assert rec["bytes"] > 100 and rec["duration_ms"] >= rec["upstream_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"])
    # The id in the log is the one the upstream was sent.
    upstream = {n.lower(): v for n, v in seen["echo"]["headers"]}
    assert re.fullmatch(r"[0-9a-f]{32}", rec["request_id"])
    assert upstream["x-request-id"] == rec["request_id"]


async def test_health_checks_are_logged_when_asked(tmp_path) -> None:
    async def requests(c, admin) -> None:
        await get(c, "/_edge/healthz")
        await get(admin, "/_edge/metrics")

    lines = await access_lines(tmp_path, 'access = "json"\nhealth = true', requests)
    assert [orjson.loads(x)["uri"] for x in lines] == ["/_edge/healthz", "/_edge/metrics"]


async def test_combined_is_nginx_combined(tmp_path) -> None:
    async def requests(c, admin) -> None:
        await get(c, f"/echo/x?gclid={TLR}", headers={"User-Agent": 'odd "agent"'})

    lines = await access_lines(tmp_path, 'access = "combined"', requests)
    assert len(lines) == 1
    m = re.fullmatch(r'(\S+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                     r'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "((?:[^"\\]|\\x[0-9A-F]{2})*)"',
                     lines[0])
    assert m is not None, lines[0]
    assert m.group(1) == "127.0.0.1"
    assert m.group(3) == "GET /echo/x?gclid=[redacted] HTTP/1.1"
    assert m.group(4) == "200" and int(m.group(5)) > 100
    assert m.group(6) == "-" and m.group(7) == "odd \\x22agent\\x22"


async def test_access_off_logs_nothing(tmp_path) -> None:
    async def requests(c, admin) -> None:
        await get(c, "/echo/x")

    assert await access_lines(tmp_path, 'access = "off"', requests) == []


async def test_a_visitors_request_id_is_replaced_a_trusted_proxys_kept(tmp_path) -> None:
    seen: list[dict] = []

    async def requests(c, admin) -> None:
        seen.append(await get(c, "/echo/a", headers={"X-Request-ID": "visitor-chosen"}))

    lines = await access_lines(tmp_path, 'access = "json"', requests)
    ids = [v for n, v in seen[0]["headers"] if n.lower() == "x-request-id"]
    assert ids == [orjson.loads(lines[0])["request_id"]] and ids != ["visitor-chosen"]

    seen.clear()
    (tmp_path / "trusted").mkdir()

    async def from_front(c, admin) -> None:
        seen.append(await get(c, "/echo/b", headers={
            "X-Request-ID": "lb-7f3a", "X-Forwarded-For": "203.0.113.7"}))

    lines = await access_lines(tmp_path / "trusted", 'access = "json"', from_front,
                               proxy_extra='trusted_proxies = ["127.0.0.1/32"]')
    rec = orjson.loads(lines[0])
    assert rec["request_id"] == "lb-7f3a" and rec["client"] == "203.0.113.7"
    assert [v for n, v in seen[0]["headers"] if n.lower() == "x-request-id"] == ["lb-7f3a"]


def test_only_the_health_endpoints_under_the_prefix_are_quiet() -> None:
    log = AccessLog(io.BytesIO())
    assert log.quiet("/_edge/healthz", "/_edge") and log.quiet("/_edge/metrics?x=1", "/_edge")
    assert not log.quiet("/_edge/feed.xml", "/_edge")
    assert not log.quiet("/abcdefhealthz", "/_edge") and not log.quiet("/healthz", "/_edge")
    assert not AccessLog(io.BytesIO(), health=True).quiet("/_edge/healthz", "/_edge")
