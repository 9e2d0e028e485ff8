"""The JSON-reading ATS files (ashby, workday, pinpoint) against the shapes their headers name.

The request and answer bodies here are written for these tests after the public
material each file's header cites (scrapers' code and fixtures): the same fields in
the same places, with made-up values. Each file must fire on an accepted application
and stay quiet on a refused one, another company's, and the look-alikes around it.
"""

from __future__ import annotations

import json
import re

import pytest
from test_rules_files import PUBLIC, RULES, env_for, fired

from proxy.config.load import load_config
from proxy.explain import explain

ORG = "acme"
POSTING = "4e6c2c61-1f4e-4b8c-9a37-0f5c9d3b2a10"
GRAPHQL = f"{PUBLIC}/api/non-user-graphql"


def ashby():
    return load_config(RULES / "ashby.toml", env=env_for(
        RULES / "ashby.toml", ATS_UPSTREAM="https://jobs.ashbyhq.com", ASHBY_ORG=ORG))


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def ashby_request(op: str, org: str = ORG, **variables: object) -> bytes:
    return body({"operationName": op, "query": f"mutation {op}(...) {{ ... }}",
                 "variables": {"organizationHostedJobsPageName": org,
                               "jobPostingId": POSTING, **variables}})


SUBMIT_VARS = {"formRenderIdentifier": "6a7e", "formDefinitionIdentifier": "91c2",
               "actionIdentifier": "c0de", "recaptchaToken": "03AFcWeA-token",
               "sourceAttributionCode": None, "applicationRequestId": None}


def submit_answer(typename: str, key: str = "submitApplicationFormAction", **extra) -> bytes:
    return body({"data": {key: {"applicationFormResult": {"__typename": typename, **extra},
                                "messages": None}}})


ACCEPTED = submit_answer("FormSubmitSuccess")
REFUSED = {
    "form errors": submit_answer("FormRender", formErrors=[
        {"message": "Email is required", "path": "_systemfield_email"}], sections=[]),
    "spam flag": body({"data": {"submitApplicationFormAction": {
        "applicationFormResult": {"__typename": "FormRender", "formErrors": [],
                                  "errorMessages": ["flagged as possible spam"]},
        "messages": {"blockMessageForCandidateHtml": "<p>We couldn't submit your "
                                                     "application.</p>"}}}}),
    "graphql error": body({"data": None, "errors": [{
        "message": "Invalid reCAPTCHA", "extensions": {"code": "RECAPTCHA_SCORE_BELOW_THRESHOLD"}}]}),
    "error beside data": body({"data": {"submitApplicationFormAction": {
        "applicationFormResult": {"__typename": "FormSubmitSuccess"}}},
        "errors": [{"message": "partial failure"}]}),
    "not json": b"<html><body>Service unavailable</body></html>",
}


def run(config, op: str, request: bytes, answer: bytes, status: int = 200) -> str:
    return explain(config, "POST", f"{GRAPHQL}?op={op}", status=status,
                   request_json=request, json_body=answer)


@pytest.mark.parametrize("op", ["ApiSubmitSingleApplicationFormAction",
                                "ApiSubmitMultipleFormsAction"])
def test_ashby_an_accepted_application_fires(op: str) -> None:
    answer = ACCEPTED if op.startswith("ApiSubmitSingle") else \
        submit_answer("FormSubmitSuccess", key="submitMultipleFormsAction")
    report = run(ashby(), op, ashby_request(op, **SUBMIT_VARS), answer)
    assert fired(report) == [("ashby application submitted", "ApplicationCompleted")], report
    assert re.search(rf"^\s+job_id = {POSTING}$", report, re.MULTILINE), report
    for sink in ("talroo", "meta", "appcast", "webhook"):
        assert re.search(rf"^  {sink} \(\w+\): ", report, re.MULTILINE), report


@pytest.mark.parametrize("why", sorted(REFUSED))
def test_ashby_a_refused_application_fires_nothing(why: str) -> None:
    op = "ApiSubmitSingleApplicationFormAction"
    report = run(ashby(), op, ashby_request(op, **SUBMIT_VARS), REFUSED[why])
    assert fired(report) == [], report
    assert "no     'ashby application submitted': json" in report, report


def test_ashby_another_companys_board_and_other_operations_fire_nothing() -> None:
    config = ashby()
    op = "ApiSubmitSingleApplicationFormAction"
    report = run(config, op, ashby_request(op, org="otherco", **SUBMIT_VARS), ACCEPTED)
    assert fired(report) == [], report
    assert "variables.organizationHostedJobsPageName → otherco  does NOT match acme" in report
    for other in ("ApiJobBoardWithTeams", "ApiSetFormValue", "ApiCreateFileUploadHandle"):
        report = run(config, other, ashby_request(other), body({"data": {"x": {"id": "1"}}}))
        assert fired(report) == [], report
    # a status the GraphQL endpoint answers when it is down
    report = run(config, op, ashby_request(op, **SUBMIT_VARS), ACCEPTED, status=502)
    assert fired(report) == [], report


def test_ashby_the_form_view_carries_the_job_title() -> None:
    answer = body({"data": {"jobPosting": {
        "id": POSTING, "title": "Senior Platform Engineer", "departmentName": "Engineering",
        "locationName": "Berlin", "applicationForm": {"id": "6a7e", "sections": []}}}})
    report = run(ashby(), "ApiJobPosting", ashby_request("ApiJobPosting"), answer)
    assert fired(report) == [("ashby application form", "ConversationStart")], report
    assert "job_name = Senior Platform Engineer" in report
    missing = body({"data": {"jobPosting": None}})
    report = run(ashby(), "ApiJobPosting", ashby_request("ApiJobPosting"), missing)
    assert fired(report) == [], report


# --- Workday ---------------------------------------------------------------------

TENANT, SITE = "acme", "External"
JOB_API = f"{PUBLIC}/wday/cxs/{TENANT}/{SITE}/job/Berlin/Data-Analyst_R-10234"


def workday():
    return load_config(RULES / "workday.toml", env=env_for(
        RULES / "workday.toml", ATS_UPSTREAM="https://acme.wd3.myworkdayjobs.com",
        WORKDAY_TENANT=TENANT, WORKDAY_SITE=SITE))


def job_info(can_apply: bool) -> bytes:
    return body({"jobPostingInfo": {"id": "8f0e", "title": "Data Analyst", "jobReqId": "R-10234",
                                    "location": "Berlin", "timeType": "Full time",
                                    "canApply": can_apply, "externalUrl": "https://x"},
                 "hiringOrganization": {"name": "Acme"}})


def test_workday_a_job_opened_carries_its_title_and_requisition() -> None:
    report = explain(workday(), "GET", JOB_API, json_body=job_info(True))
    assert fired(report) == [("workday job opened", "ConversationStart")], report
    assert "job_name = Data Analyst" in report and re.search(
        r"^\s+job_id = R-10234$", report, re.MULTILINE), report
    assert fired(explain(workday(), "GET", JOB_API, json_body=job_info(False))) == []
    other = JOB_API.replace(f"/{TENANT}/{SITE}/", "/otherco/Careers/")
    assert fired(explain(workday(), "GET", other, json_body=job_info(True))) == []


def test_workday_the_guessed_submit() -> None:
    url = f"{PUBLIC}/wday/cxs/{TENANT}/{SITE}/job/Berlin/Data-Analyst_R-10234/apply/submit"
    report = explain(workday(), "POST", url, json_body=body({"applicationId": "a1"}))
    assert [e for _, e in fired(report)] == ["ApplicationCompleted"], report
    refused = body({"errors": [{"message": "Please answer every required question"}]})
    assert fired(explain(workday(), "POST", url, json_body=refused)) == []
    search = f"{PUBLIC}/wday/cxs/{TENANT}/{SITE}/jobs"
    assert fired(explain(workday(), "POST", search, json_body=body({"total": 3}))) == []


# --- Pinpoint --------------------------------------------------------------------

PIN = "ac538c02-dd11-4998-a58d-74749bf58c42"
FORM = f"{PUBLIC}/en/postings/{PIN}/applications/new"
SEND = f"{PUBLIC}/en/postings/{PIN}/applications"


def pinpoint():
    return load_config(RULES / "pinpoint.toml", env=env_for(
        RULES / "pinpoint.toml", ATS_UPSTREAM="https://acme.pinpointhq.com"))


def test_pinpoint_the_form_page_names_the_job() -> None:
    page = (b'<html><head><title>Line Cook - Acme</title></head><body><main>'
            b'<h1>Line Cook</h1><script type="application/json" class="js-react-on-rails-component"'
            b' data-component-name="Shared::Form::Questions::Longtext">{"questionDetails":'
            b'{"title":"Why us?"}}</script></main></body></html>')
    report = explain(pinpoint(), "GET", FORM, body=page)
    assert fired(report) == [("pinpoint application form", "ConversationStart")], report
    assert "job_name = Line Cook" in report and f"job_id = {PIN}" in report


@pytest.mark.parametrize(("status", "location", "answer", "fires"), [
    (302, f"https://acme.pinpointhq.com/en/postings/{PIN}/applications/7731", None, True),
    (303, f"/en/postings/{PIN}/thank_you", None, True),
    (201, None, body({"id": 7731, "status": "received"}), True),
    (200, None, body({"errors": {"email": ["is invalid"]}}), False),
    (422, None, body({"errors": {"cv": ["can't be blank"]}}), False),
    (302, "https://acme.pinpointhq.com/en/postings", None, False),
    (200, None, b"<html>form again</html>", False),
])
def test_pinpoint_the_guessed_submit(status: int, location: str | None, answer: bytes | None,
                                     fires: bool) -> None:
    report = explain(pinpoint(), "POST", SEND, status=status, location=location,
                     json_body=answer)
    events = [e for _, e in fired(report)]
    assert events == (["ApplicationCompleted"] if fires else []), report


def test_pinpoint_appcast_pixels_go_where_the_header_says() -> None:
    config = pinpoint()
    pixels = {p.name: p for p in config.pixels}

    def on(name: str, path: str) -> bool:
        return any(p.match(path) is not None for p in pixels[name].paths)

    assert on("appcast_job", f"/en/postings/{PIN}") and on("appcast_job", f"/postings/{PIN}")
    assert on("appcast_job", f"/en/postings/{PIN}/applications/new")
    assert on("appcast_apply", f"/en/postings/{PIN}/applications/7731")
    assert not on("appcast_apply", f"/en/postings/{PIN}/applications/new")
    assert not on("appcast_apply", f"/en/postings/{PIN}")
    assert "click.appcast.io" in pixels["appcast_job"].html
