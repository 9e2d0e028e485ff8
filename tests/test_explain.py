"""`careers-edge explain`: the dry run against rules/demo.toml and small rules texts."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cli import main
from proxy.config.load import load_config, load_config_text
from proxy.conversions.sinks.webhook import verify
from proxy.explain import explain

RULES = Path(__file__).resolve().parents[1] / "rules"
UPSTREAM = "http://127.0.0.1:9001"
RECORDER = "http://127.0.0.1:9002"
DEMO_ENV = {"CAREERS_EDGE_DEMO_UPSTREAM": UPSTREAM, "CAREERS_EDGE_DEMO_RECORDER": RECORDER}
SID = "0d5f0e2a-7c1b-4e8e-9a55-3f1c2b7d9e10"
TOKEN = "EAAB-meta-token-never-printed"
HOOK_SECRET = "hook-secret-never-printed"
AUTH = "Bearer appcast-key-never-printed"


@pytest.fixture(scope="module")
def demo():
    return load_config(RULES / "demo.toml", env=DEMO_ENV)


def section(report: str, title: str) -> str:
    """The indented lines under the heading that starts with `title`."""
    m = re.search(rf"^{re.escape(title)}[^\n]*\n((?:  [^\n]*\n?)*)", report, re.MULTILINE)
    assert m, f"no section {title!r} in:\n{report}"
    return m.group(1)


def sink_block(report: str, name: str) -> list[str]:
    """The lines of one sink's entry: its heading line and the payload under it."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} ("))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("      "):
            break
        block.append(line[6:])
    return block


def assert_terminal_safe(report: str) -> None:
    assert all(c.isprintable() or c == "\n" for c in report), repr(report)


# --- click ids, cookies, the URL sent upstream ---------------------------------


def test_landing_url_captures_click_ids_and_strips_them_upstream(demo) -> None:
    url = f"https://careers.acme.example/jobs/3?utm_source=x&tlr_sid={SID}&q=a%20b&fbclid=IwAR-1"
    report = explain(demo, "get", url)
    clicks = section(report, "Click ids")
    assert f"captured  tlr_sid = {SID}" in clicks
    assert "captured  fbclid = IwAR-1" in clicks
    # Kept params stay byte-exact and in order; the upstream is the configured one.
    assert f"forwarded upstream: {UPSTREAM}/jobs/3?utm_source=x&q=a%20b  (captured" in clicks
    cookies = section(report, "Cookies set")
    assert "linksClickedId=<new>; Max-Age=7776000; Path=/; SameSite=Lax; Secure" in cookies
    assert "ce_attr=<signed: fbclid, tlr_sid>;" in cookies and "HttpOnly" in cookies
    assert re.search(r"_fbc=fb\.1\.\d+\.IwAR-1[.;]", cookies)
    assert "Domain=acme.example" in cookies
    assert "assumed granted" in section(report, "Consent")


def test_a_url_without_click_ids_is_forwarded_unchanged(demo) -> None:
    report = explain(demo, "GET", "/jobs?page=2")
    clicks = section(report, "Click ids")
    assert "none in this URL" in clicks
    assert clicks.strip().endswith(f"forwarded upstream: {UPSTREAM}/jobs?page=2")


def test_hostile_click_ids_are_rejected_with_the_reason_and_never_reach_a_cookie(demo) -> None:
    url = "/jobs/1?tlr_sid=not-a-uuid&gclid=x%0d%0aSet-Cookie:%20pwn%1b[31m&ccuid=" + "a" * 600
    report = explain(demo, "GET", url)
    clicks = section(report, "Click ids")
    assert "rejected  tlr_sid = not-a-uuid  (not a UUID)" in clicks
    assert "rejected  gclid = x\\r\\nSet-Cookie: pwn\\x1b[31m  (characters outside" in clicks
    assert "rejected  ccuid = " in clicks and "(longer than 512 characters)" in clicks
    assert "captured" not in clicks
    # Not captured, so not stripped: the query goes upstream as it came.
    assert f"forwarded upstream: {UPSTREAM}/jobs/1?tlr_sid=not-a-uuid&gclid=x%0d%0a" in clicks
    cookies = section(report, "Cookies set")
    assert "ce_attr" not in cookies and "pwn" not in cookies
    assert_terminal_safe(report)


# --- pixels and the transform --------------------------------------------------------


def test_pixels_on_a_job_page_with_positions_and_csp_hosts(demo) -> None:
    pixels = section(explain(demo, "GET", "/jobs/3"), "Pixels on /jobs/3")
    assert re.search(r"meta +meta +head: base code \+ PageView; body: noscript image", pixels)
    assert re.search(r"appcast_job +html +head: html snippet", pixels)
    assert "appcast_apply" not in pixels            # only on /jobs/*/thanks
    assert f"CSP adds  script-src https://connect.facebook.net {RECORDER}" in pixels
    assert "CSP adds  img-src https://www.facebook.com" in pixels
    assert "response: transformed while streaming (pixels injected" in pixels
    thanks = section(explain(demo, "GET", "/jobs/3/thanks"), "Pixels on")
    assert re.search(r"appcast_apply +html +body: html snippet", thanks)


@pytest.mark.parametrize("method, status, why", [("GET", 304, "status 304"),
                                                 ("HEAD", 200, "a HEAD request")])
def test_a_response_that_is_not_200_html_passes_through(demo, method, status, why) -> None:
    pixels = section(explain(demo, method, "/jobs/3", status=status), "Pixels on")
    assert f"response: passes through untouched ({why};" in pixels


# --- rules ---------------------------------------------------------------------------


def apply(demo, url: str = "/jobs/3/apply", **kw) -> str:
    kw.setdefault("status", 303)
    kw.setdefault("location", "/jobs/3/thanks?ref=x")
    kw.setdefault("form", {"job_title": "Dev"})
    return explain(demo, "POST", url, **kw)


def test_application_submitted_fires_and_talroo_is_skipped_without_tlr_sid(demo) -> None:
    report = apply(demo, form={"job_title": "Dev", "name": "Ann"})
    rules = section(report, "Rules")
    assert "candidates (request side matches): 'application submitted'" in rules
    assert "FIRES  'application submitted' → ApplicationCompleted" in rules
    assert "job_id = 3" in rules and "job_name = Dev  (form:job_title)" in rules
    assert "form fields no candidate reads (not sniffed): name" in rules
    assert "'apply form viewed': not a candidate (method GET)" in rules
    talroo = sink_block(report, "talroo")
    assert talroo[0] == "  talroo (talroo): skipped: requires tlr_sid; a visitor who has it " \
                        "would get:"
    assert talroo[1] == f"GET {RECORDER}/conversion2.php?tlr_sid=<tlr_sid>&Link=true"
    appcast = sink_block(report, "appcast")
    assert "skipped: requires ccuid" in appcast[0]
    assert re.fullmatch(rf"GET {RECORDER}/appcast/events\?e=ApplicationCompleted&click=<ccuid>"
                        r"&job=3&t=\d{13}", appcast[1])
    assert "browser: tracked on the next HTML page (carried in the ce_events cookie)" in report


def test_with_tlr_sid_talroo_gets_the_conversion_url(demo) -> None:
    report = apply(demo, url=f"/jobs/3/apply?tlr_sid={SID}&ccuid=cc-1")
    talroo = sink_block(report, "talroo")
    assert talroo == ["  talroo (talroo): queued (durable outbox), then:",
                      f"GET {RECORDER}/conversion2.php?tlr_sid={SID}&Link=true"]
    assert "&click=cc-1&job=3&" in sink_block(report, "appcast")[1]


def test_meta_payload_is_the_sinks_body_with_the_token_masked(demo) -> None:
    report = apply(demo, url="/jobs/3/apply?fbclid=IwAR-2")
    meta = sink_block(report, "meta")
    assert meta[1] == f"POST {RECORDER}/v21.0/123456789012345/events"
    body = json.loads("\n".join(meta[3:]))
    assert body["access_token"] == "***"
    (event,) = body["data"]
    assert event["event_name"] == "SubmitApplication"        # after event_names
    assert event["action_source"] == "website"
    assert event["custom_data"] == {"linksClickedId": "<new>", "jobName": "Dev"}
    assert event["user_data"]["fbc"].split(".")[3] == "IwAR-2"
    assert event["event_source_url"].endswith("/jobs/3/apply?fbclid=IwAR-2")
    assert "demo-access-token" not in report


@pytest.mark.parametrize("kw, why", [
    ({"status": 200}, "status 200 is not 303"),
    ({"location": "/jobs/3/oops"}, "Location /jobs/3/oops does not match /jobs/*/thanks*"),
    ({"location": None}, "needs a Location matching /jobs/*/thanks* (pass --location)"),
])
def test_a_rule_that_does_not_fire_says_why(demo, kw, why) -> None:
    report = apply(demo, **kw)
    assert f"no     'application submitted': {why}" in section(report, "Rules")
    assert "Sinks for" not in report


def test_a_location_naming_the_upstream_is_matched_as_the_public_one(demo) -> None:
    report = apply(demo, location=f"{UPSTREAM}/jobs/3/thanks")
    assert "FIRES  'application submitted'" in report


def test_css_job_name_reads_the_body_given(demo, tmp_path) -> None:
    page = b"<html><head><title>x</title></head><body><h1> Senior \n Dev </h1></body></html>"
    report = explain(demo, "GET", "/jobs/7/apply", body=page)
    rules = section(report, "Rules")
    assert "FIRES  'apply form viewed' → ConversationStart" in rules
    assert "job_id = 7" in rules and "job_name = Senior Dev  (css:h1)" in rules
    assert "browser: tracked on this page with the same event_id" in report
    without = section(explain(demo, "GET", "/jobs/7/apply"), "Rules")
    assert "job_name: (none: css:h1 reads the response body; pass --body FILE)" in without


BODY_RULES = f"""
[proxy]
upstream = "https://ats.example"
public_url = "https://careers.acme.example"

[[rules]]
name = "thanks page"
event = "ApplicationCompleted"
path = "/apply/done"
status = [200]
body = "Thank you for applying"
job_name = "jsonld:title"
extract = {{ ref = "query:ref" }}
continue = true
send_to = ["ats", "appcast"]

[[rules]]
name = "any done page"
event = "Done"
path = "/apply/**"
send_to = []

[[rules]]
name = "never reached"
event = "Other"
path = "/apply/done"

[sinks.ats]
type = "webhook"
url = "https://hooks.acme.example/conversions?api_key=abc123"
secret = "{HOOK_SECRET}"

[sinks.appcast]
type = "http"
method = "POST"
url = "https://events.appcast.example/e?job={{jobName}}&token=t0k3n"
headers = {{ Authorization = "{AUTH}" }}
body = '{{"event": "{{event}}", "job": "{{jobName}}", "id": "{{event_id}}"}}'
"""
THANKS = (b'<html><head><script type="application/ld+json">{"@type": "JobPosting", '
          b'"title": "Dev \\"Ops\\""}</script></head><body>Thank you for applying</body></html>')


@pytest.fixture(scope="module")
def body_rules():
    return load_config_text(BODY_RULES)


def test_body_rule_fires_with_continue_and_stops_at_the_first_rule_without(body_rules) -> None:
    report = explain(body_rules, "GET", "/apply/done?ref=r-9", body=THANKS)
    rules = section(report, "Rules")
    assert "FIRES  'thanks page' → ApplicationCompleted" in rules
    assert 'job_name = Dev "Ops"  (jsonld:title)' in rules and "ref = r-9" in rules
    assert "FIRES  'any done page' → Done" in rules
    assert "no     'never reached': not tried: 'any done page' fired first" in rules
    assert "Sinks for 'any done page' (Done)" in report


@pytest.mark.parametrize("kw, why", [
    ({}, "needs the response body for body 'Thank you for applying' (pass --body FILE)"),
    ({"body": b"<p>Sorry</p>"}, "body has no 'Thank you for applying'"),
    ({"body": THANKS, "status": 302}, "status 302 is not 200"),
])
def test_body_rule_without_a_matching_body(body_rules, kw, why) -> None:
    report = explain(body_rules, "GET", "/apply/done", **kw)
    assert f"no     'thanks page': {why}" in section(report, "Rules")


def test_webhook_and_http_payloads_hide_secrets_and_the_signature_verifies(body_rules) -> None:
    report = explain(body_rules, "GET", "/apply/done?ref=r-9", body=THANKS)
    for secret in (HOOK_SECRET, AUTH, "appcast-key", "abc123", "t0k3n"):
        assert secret not in report
    hook = sink_block(report, "ats")
    assert hook[0] == "  ats (webhook): queued (durable outbox), then:"
    assert hook[1] == "POST https://hooks.acme.example/conversions?api_key=***"
    sig = next(line for line in hook if line.startswith("X-Careers-Edge-Signature: "))
    body = hook[-1].encode()
    assert verify(HOOK_SECRET, body, sig.partition(": ")[2])     # exactly the bytes signed
    sent = json.loads(body)
    assert (sent["event"], sent["jobName"], sent["linksClickedId"]) == \
        ("ApplicationCompleted", 'Dev "Ops"', "<new>")
    http = sink_block(report, "appcast")
    assert http[1] == ("POST https://events.appcast.example/e?job=Dev%20%22Ops%22"
                       "&token=***")
    assert "Authorization: ***" in http
    assert "Content-Type: application/json" in http
    assert json.loads(http[-1])["job"] == 'Dev "Ops"'
    assert json.loads(http[-1])["id"] == sent["event_id"]        # one event, one id


CONSENT_RULES = """
[proxy]
upstream = "https://ats.example"

[consent]
required = true

[pixels.meta]
type = "meta"
pixel_id = "1"
paths = ["/**"]

[[rules]]
name = "viewed"
event = "ViewContent"
path = "/jobs/*"
send_to = ["meta"]

[sinks.meta]
type = "meta"
pixel_id = "1"
access_token = "secret-token"
"""


def test_consent_required_suppresses_pixels_and_marketing_sinks() -> None:
    config = load_config_text(CONSENT_RULES)
    report = explain(config, "GET", "/jobs/1?fbclid=IwAR-3")
    assert "not given: [consent] required = true" in section(report, "Consent")
    assert "none: no consent (meta would match)" in section(report, "Pixels on")
    assert "_fbc" not in section(report, "Cookies set")
    assert sink_block(report, "meta") == ["  meta (meta): suppressed: no consent"]
    given = explain(config, "GET", "/jobs/1", cookie="cookie_consent=marketing")
    assert "granted by the cookie_consent cookie" in given
    assert "meta (meta): queued" in given and "secret-token" not in given


def test_the_proxys_own_endpoints_are_not_proxied(demo) -> None:
    report = explain(demo, "GET", "/_edge/go?to=https://wa.me/1")
    assert "is the proxy's own endpoint" in report and "Rules" not in report


def test_a_url_that_is_not_http_is_refused(demo) -> None:
    assert "not an http(s) URL" in explain(demo, "GET", "ftp://example.org/x")


@settings(max_examples=100, deadline=None)
@given(query=st.text(max_size=200), form=st.dictionaries(st.text(max_size=20),
                                                         st.text(max_size=40), max_size=3))
def test_any_query_and_form_give_a_terminal_safe_report(query: str, form) -> None:
    config = load_config(RULES / "demo.toml", env=DEMO_ENV)
    report = explain(config, "POST", "/jobs/3/apply?" + query, status=303,
                     location="/jobs/3/thanks", form=form)
    assert report.startswith("POST ")
    assert_terminal_safe(report)


# --- the command ---------------------------------------------------------------------


def test_cli_explain_end_to_end(monkeypatch, tmp_path, capsys) -> None:
    for k, v in DEMO_ENV.items():
        monkeypatch.setenv(k, v)
    page = tmp_path / "apply.html"
    page.write_bytes(b"<html><body><h1>Nurse</h1></body></html>")
    sid = str(uuid.uuid4())
    code = main(["explain", "-c", str(RULES / "demo.toml"), "GET",
                 f"/jobs/2/apply?tlr_sid={sid}", "--body", str(page)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"captured  tlr_sid = {sid}" in out
    assert "job_name = Nurse  (css:h1)" in out
    code = main(["explain", "-c", str(RULES / "demo.toml"), "POST", f"/jobs/2/apply?tlr_sid={sid}",
                 "--status", "303", "--location", "/jobs/2/thanks?ref=x",
                 "--form", "job_title=Nurse"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"GET {RECORDER}/conversion2.php?tlr_sid={sid}&Link=true" in out
    assert "demo-access-token" not in out and "demo-webhook-secret" not in out


def test_cli_explain_refuses_an_invalid_rules_file(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[proxy]\nupstream = "https://ats.example"\n\n[[rules]]\nname = "x"\n'
                   'event = "E"\npath = "/a"\nsend_to = ["nowhere"]\nbogus = 1\n')
    code = main(["explain", "-c", str(bad), "GET", "/a"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "bogus" in captured.err and "nowhere" in captured.err


def test_network_sinks_show_their_requests_with_credentials_masked(demo) -> None:
    url = "/jobs/3/apply?ittk=it-1&gclid=gc-1&li_fat_id=li-1&ttclid=tt-1"
    report = apply(demo, url=url)
    indeed = sink_block(report, "indeed")
    assert indeed[:4] == [
        "  indeed (indeed): queued (durable outbox), then:",
        f"(access token: POST {RECORDER}/oauth/v2/tokens, cached until it expires)",
        f"POST {RECORDER}/enterprise/conversions/v1/events", "Authorization: ***"]
    (sent,) = json.loads("\n".join(indeed[5:]))
    assert (sent["event"], sent["ittk"], sent["guid"]) == ("APPLY_COMPLETE", "it-1",
                                                           "demo-partner-guid")
    google = sink_block(report, "google_ads")
    assert google[2] == f"POST {RECORDER}/v25/customers/1234567890:uploadClickConversions"
    assert "developer-token: ***" in google
    body = json.loads("\n".join(line for line in google[3:] if not re.match(r"[\w-]+: ", line)))
    (conversion,) = body["conversions"]
    assert conversion["gclid"] == "gc-1" and conversion["orderId"]
    assert conversion["conversionAction"] == "customers/1234567890/conversionActions/555"
    linkedin = sink_block(report, "linkedin")
    assert linkedin[1] == f"POST {RECORDER}/rest/conversionEvents"
    assert "Authorization: ***" in linkedin and "LinkedIn-Version: 202603" in linkedin
    tiktok = sink_block(report, "tiktok")
    assert "Access-Token: ***" in tiktok and '"ttclid":"tt-1"' in "\n".join(tiktok)
    for secret in ("demo-indeed-secret", "demo-developer-token", "demo-refresh-token",
                   "demo-linkedin-token", "demo-tiktok-token", "demo-google-secret"):
        assert secret not in report


def test_network_sinks_say_which_click_id_a_visitor_lacks(demo) -> None:
    report = apply(demo)
    assert "skipped: requires ittk;" in sink_block(report, "indeed")[0]
    assert "skipped: requires gclid or gbraid or wbraid;" in sink_block(report, "google_ads")[0]
    assert '"gclid": "<gclid>"' in "\n".join(sink_block(report, "google_ads"))
    assert "skipped: requires li_fat_id;" in sink_block(report, "linkedin")[0]
    assert "queued" in sink_block(report, "tiktok")[0]


def test_the_access_log_line_shows_what_is_redacted(demo) -> None:
    url = f"https://careers.acme.example/jobs/3?tlr_sid={SID}&email=jane%40acme.example&p=2"
    line = section(explain(demo, "GET", url), "Access log")
    assert "GET /jobs/3?tlr_sid=[redacted]&email=[redacted]&p=2  (json, redacted)" in line
    assert SID not in line


SCRIPT_RULES = """
[proxy]
upstream = "https://ats.example"

[pixels.meta]
type = "meta"
pixel_id = "123456789012345"
paths = ["/jobs/**"]

[[rules]]
name = "api apply"
event = "ApplicationCompleted"
method = "POST"
path = "/api/jobs/{job_id}/applications"
status = [201]
"""


def test_an_event_on_a_response_that_is_no_page_goes_to_the_pages_script() -> None:
    report = explain(load_config_text(SCRIPT_RULES), "POST", "/api/jobs/3/applications",
                     status=201)
    assert "FIRES  'api apply' → ApplicationCompleted" in section(report, "Rules")
    assert "browser: tracked by the page's script from the X-Careers-Edge-Events header " \
           "(a fetch or XHR), else on the next HTML page (ce_events cookie)" in report


def test_the_demos_quick_apply_fires_on_ok_and_goes_to_the_pages_script(demo) -> None:
    accepted = explain(demo, "POST", "/api/jobs/3/applications",
                       json_body=b'{"ok": true, "job": {"id": "3", "title": "Nurse"}}')
    assert "FIRES  'quick apply accepted' → ApplicationCompleted" in accepted
    assert "job_name = Nurse  (json:job.title)" in accepted
    assert "browser: tracked by the page's script from the X-Careers-Edge-Events" in accepted
    rejected = explain(demo, "POST", "/api/jobs/3/applications",
                       json_body=b'{"ok": false, "errors": ["Please enter your e-mail."]}')
    assert "FIRES" not in rejected and "X-Careers-Edge-Events" not in rejected
