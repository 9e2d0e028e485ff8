"""`careers-edge explain --json FILE --request-json FILE`: what each JSON expression yields."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain import assert_terminal_safe, section

from proxy.cli import main
from proxy.config.load import load_config_text
from proxy.explain import explain

RULES = """\
[proxy]
upstream = "https://ats.example"

[[rules]]
name = "submit"
event = "ApplicationCompleted"
method = "POST"
path = "/api/graphql"
status = [200]
request_json = { operationName = "Submit*" }
json = { errors = "null", "data.submit.ok" = "true" }
job_name = "json:data.submit.job.title"
extract = { posting = "request_json:variables.postingId" }
send_to = ["hook"]

[sinks.hook]
type = "webhook"
url = "https://hooks.example/x"
secret = "whsec"
"""
URL = "https://careers.acme.example/api/graphql"
REQUEST = json.dumps({"operationName": "SubmitApplication",
                      "variables": {"postingId": "p-17"}}).encode()
ACCEPTED = json.dumps({"data": {"submit": {"ok": True, "job": {"title": "Welder"}}}}).encode()
REJECTED = json.dumps({"data": {"submit": None},
                       "errors": [{"message": "Invalid email"}]}).encode()


def config():
    return load_config_text(RULES, "rules.toml", {})


def test_an_accepted_answer_fires_with_each_condition_shown() -> None:
    report = explain(config(), "POST", URL, json_body=ACCEPTED, request_json=REQUEST)
    assert report.splitlines()[0].endswith("assumed response 200 (JSON, the --json body)")
    rules = section(report, "Rules")
    assert "FIRES  'submit' → ApplicationCompleted" in rules
    assert "request_json operationName → SubmitApplication  matches Submit*" in rules
    assert "json errors → null  matches null" in rules
    assert "json data.submit.ok → true  matches true" in rules
    assert "job_name = Welder  (json:data.submit.job.title)" in rules
    assert "posting = p-17" in rules
    assert "passes through untouched (not HTML" in section(report, "Pixels")
    hook = section(report, "Sinks for 'submit'")
    assert '"jobName":"Welder"' in hook.replace(" ", "")


def test_a_rejected_answer_says_which_condition_failed_and_what_each_yields() -> None:
    report = explain(config(), "POST", URL, json_body=REJECTED, request_json=REQUEST)
    rules = section(report, "Rules")
    assert "no     'submit': json errors is '[{\"message\":\"Invalid email\"}]', not null" in rules
    assert 'json errors → [{"message":"Invalid email"}]  does NOT match null' in rules
    assert "json data.submit.ok → null  does NOT match true" in rules
    assert "job_name from json:data.submit.job.title → null" in rules
    assert "posting from request_json:variables.postingId → p-17" in rules
    assert "Sinks for" not in report


def test_missing_and_unreadable_bodies_are_named() -> None:
    report = explain(config(), "POST", URL)
    assert "no     'submit': request_json: needs the JSON request body (pass --request-json FILE)" \
        in report
    report = explain(config(), "POST", URL, request_json=REQUEST)
    assert "needs the JSON answer (pass --json FILE)" in report
    report = explain(config(), "POST", URL, request_json=REQUEST, json_body=b"{oops")
    assert "json: the JSON answer given is not read: invalid" in report
    report = explain(config(), "POST", URL, request_json=REQUEST,
                     json_body=b"[" * 3000 + b"]" * 3000)
    assert "not read: too_deep" in report
    big = json.dumps({"pad": "x" * (1024 * 1024)}).encode()
    report = explain(config(), "POST", URL, request_json=REQUEST, json_body=big)
    assert "not read: too_large" in report
    report = explain(config(), "POST", URL, json_body=ACCEPTED,
                     request_json=json.dumps({"operationName": "SubmitApplication",
                                              "pad": "x" * 300_000}).encode())
    assert "request_json: the JSON request body given is not read: too_large" in report


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=60).map(
    lambda t: json.dumps({"data": {"submit": {"ok": True, "job": {"title": t}}}}).encode()))
def test_any_body_gives_a_terminal_safe_report(raw: bytes) -> None:
    report = explain(config(), "POST", URL, json_body=raw, request_json=raw)
    assert report.startswith("POST ")
    assert_terminal_safe(report)


def test_cli_explain_json_files(tmp_path, capsys) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    (tmp_path / "answer.json").write_bytes(ACCEPTED)
    (tmp_path / "request.json").write_bytes(REQUEST)
    code = main(["explain", "-c", str(rules), "POST", URL, "--json",
                 str(tmp_path / "answer.json"), "--request-json", str(tmp_path / "request.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "FIRES  'submit'" in out and "job_name = Welder" in out
