"""`rules/greenhouse-embed.toml`, dry-run with `explain`: the embedded form's view, its
submit and its confirmation fire under /apply/ for your board only, and the route sends
them to Greenhouse's /embed/ paths."""

from __future__ import annotations

import re

import pytest
from test_rules_files import PUBLIC, RULES, env_for, fired

from proxy.config.load import load_config
from proxy.explain import explain

PACK = RULES / "greenhouse-embed.toml"
EMBED = "https://job-boards.greenhouse.io/embed/"
CONFIRMATION = f"{EMBED}job_app/confirmation?for=acme&token=4012345"


@pytest.fixture(scope="module")
def config():
    return load_config(PACK, env=env_for(PACK, GREENHOUSE_EMBED_UPSTREAM=EMBED,
                                         GREENHOUSE_BOARD="acme"))


def job_id(report: str) -> str | None:
    m = re.search(r"^\s+job_id = (\S+)$", report, re.MULTILINE)
    return m[1] if m else None


def test_the_form_is_served_by_greenhouse_under_apply(config) -> None:
    assert [(r.prefix, r.upstream) for r in config.routes] == [("/apply/", EMBED)]
    report = explain(config, "GET", f"{PUBLIC}/apply/job_app?for=acme&token=4012345")
    assert "forwarded upstream: https://job-boards.greenhouse.io/embed/job_app" \
           "?for=acme&token=4012345" in report
    assert fired(report) == [("greenhouse embedded form viewed", "ConversationStart")]
    assert job_id(report) == "4012345"


def test_the_job_title_is_the_forms_heading(config) -> None:
    page = (b'<html><body><div id="app_body"><h1 class="app-title">Data Analyst</h1>'
            b'<form id="application_form"></form></div></body></html>')
    report = explain(config, "GET", f"{PUBLIC}/apply/job_app?for=acme&token=4012345",
                     body=page)
    assert "job_name = Data Analyst" in report, report


@pytest.mark.parametrize("location", [CONFIRMATION, "/embed/job_app/confirmation?for=acme"
                                                    "&token=4012345"])
def test_a_submit_redirected_to_the_confirmation_fires(config, location: str) -> None:
    report = explain(config, "POST", f"{PUBLIC}/apply/job_app?for=acme&token=4012345",
                     status=303, location=location)
    assert fired(report) == [("greenhouse embedded application submitted",
                              "ApplicationCompleted")], report
    assert job_id(report) == "4012345"
    for sink in ("talroo", "meta", "appcast", "webhook"):
        assert re.search(rf"^  {sink} \(\w+\): ", report, re.MULTILINE), report


def test_the_confirmation_page_fires(config) -> None:
    report = explain(config, "GET", f"{PUBLIC}/apply/job_app/confirmation?for=acme"
                                    "&token=4012345")
    assert fired(report) == [("greenhouse embedded confirmation", "ApplicationCompleted")]
    assert job_id(report) == "4012345"


@pytest.mark.parametrize("method,url,status,location", [
    ("POST", "/apply/job_app?for=acme&token=1", 200, None),           # errors in the form
    ("POST", "/apply/job_app?for=acme&token=1", 302, f"{EMBED}job_app?for=acme&token=1"),
    ("POST", "/apply/job_app?for=otherco&token=1", 303,
     f"{EMBED}job_app/confirmation?for=otherco&token=1"),            # another board
    ("GET", "/apply/job_app/confirmation?for=otherco&token=1", 200, None),
    ("GET", "/apply/job_app?for=otherco&token=1", 200, None),
    ("GET", "/apply/job_app/confirmation?for=acme&token=1", 404, None),
    ("GET", "/embed/job_app/confirmation?for=acme&token=1", 200, None),  # the main site
    ("GET", "/jobs/backend-engineer", 200, None),
])
def test_look_alikes_fire_nothing(config, method, url, status, location) -> None:
    report = explain(config, method, PUBLIC + url, status=status, location=location)
    assert fired(report) == [], report
