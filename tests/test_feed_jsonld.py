"""JobPosting JSON-LD harvesting: every shape sites publish, and hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.feed.fields import MAX_DESCRIPTION, MAX_TEXT, parse_date
from proxy.feed.jsonld import harvest

PUBLIC = "https://careers.acme.example"
UPSTREAM = "https://acme.hosted-ats.example"
ORIGINS = frozenset({PUBLIC, UPSTREAM})
PAGE = PUBLIC + "/jobs/42"


def page(*blocks: object, raw: str = "") -> bytes:
    scripts = "".join(
        f'<script type="application/ld+json">{json.dumps(b)}</script>' for b in blocks)
    return f"<html><head><title>x</title>{scripts}{raw}</head><body>hi</body></html>".encode()


def posting(**extra: object) -> dict:
    base = {
        "@context": "https://schema.org/",
        "@type": "JobPosting",
        "title": "Welder",
        "datePosted": "2024-05-01",
        "url": UPSTREAM + "/jobs/42",
    }
    base.update(extra)
    return base


def test_single_object_full_fields() -> None:
    out = harvest(page(posting(
        identifier={"@type": "PropertyValue", "name": "Acme", "value": "REQ-7"},
        hiringOrganization={"@type": "Organization", "name": "Acme &amp; Sons"},
        jobLocation={"@type": "Place", "address": {
            "@type": "PostalAddress", "addressLocality": "Berlin", "addressRegion": "BE",
            "postalCode": "10115", "addressCountry": {"@type": "Country", "name": "DE"}}},
        baseSalary={"@type": "MonetaryAmount", "currency": "EUR", "value": {
            "@type": "QuantitativeValue", "minValue": 50000, "maxValue": 60000,
            "unitText": "YEAR"}},
        employmentType=["FULL_TIME", "CONTRACTOR"],
        validThrough="2024-06-30T23:59:00+02:00",
        description="<p>Weld <b>things</b></p>",
        educationRequirements={"@type": "EducationalOccupationalCredential",
                               "credentialCategory": "high school"},
        experienceRequirements={"@type": "OccupationalExperienceRequirements",
                                "monthsOfExperience": 24},
        occupationalCategory="Manufacturing",
    )), PAGE, ORIGINS)
    assert not out.skipped
    (job,) = out.jobs
    assert job.key == "id:REQ-7" and job.referencenumber == "REQ-7"
    assert job.path == "/jobs/42"
    assert job.company == "Acme & Sons"
    assert (job.city, job.state, job.postalcode, job.country) == ("Berlin", "BE", "10115", "DE")
    assert job.salary == "50000-60000 EUR per year"
    assert job.jobtype == "fulltime, contract"
    assert job.date == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    assert job.valid_through == datetime(2024, 6, 30, 21, 59, tzinfo=UTC).timestamp()
    assert job.description == "<p>Weld <b>things</b></p>"
    assert (job.education, job.experience, job.category) == (
        "high school", "24 months", "Manufacturing")


@pytest.mark.parametrize("context", [
    "http://schema.org", "https://schema.org", "http://schema.org/", "https://schema.org/",
    {"@vocab": "https://schema.org/"}, ["https://schema.org", {"@language": "en"}], None,
])
def test_context_variations(context: object) -> None:
    item = posting()
    if context is None:
        del item["@context"]
    else:
        item["@context"] = context
    assert [j.title for j in harvest(page(item), PAGE, ORIGINS).jobs] == ["Welder"]


@pytest.mark.parametrize("kind", [
    "JobPosting", ["JobPosting"], ["Thing", "JobPosting"], "http://schema.org/JobPosting",
    "https://schema.org/JobPosting", "schema:JobPosting",
])
def test_type_as_string_list_or_iri(kind: object) -> None:
    assert len(harvest(page(posting(**{"@type": kind})), PAGE, ORIGINS).jobs) == 1


def test_not_a_job_posting_is_ignored() -> None:
    out = harvest(page(posting(**{"@type": "Organization"}), {"@type": "WebSite"}),
                  PAGE, ORIGINS)
    assert out.jobs == [] and not out.skipped


def test_array_of_postings() -> None:
    items = [posting(title=f"Job {i}", url=f"/jobs/{i}") for i in range(3)]
    out = harvest(page(items), PUBLIC + "/jobs", ORIGINS)
    assert [(j.title, j.path, j.key) for j in out.jobs] == [
        (f"Job {i}", f"/jobs/{i}", f"url:/jobs/{i}") for i in range(3)]


def test_graph_with_id_references_and_main_entity() -> None:
    graph = {"@context": "https://schema.org", "@graph": [
        {"@type": "Organization", "@id": "#org", "name": "Acme"},
        {"@type": "WebPage", "@id": PAGE, "mainEntity": posting(
            hiringOrganization={"@id": "#org"}, **{"@context": None})},
    ]}
    (job,) = harvest(page(graph), PAGE, ORIGINS).jobs
    assert job.company == "Acme"


def test_broken_json_is_skipped_and_counted_and_the_rest_kept() -> None:
    raw = ('<script type="application/ld+json">{"@type": "JobPosting", "title": </script>'
           '<script type="application/ld+json">[[[[[[</script>')
    out = harvest(page(posting(), raw=raw), PAGE, ORIGINS)
    assert len(out.jobs) == 1
    assert out.skipped["invalid_json"] == 2


def test_deeply_nested_json_does_not_crash() -> None:
    raw = '<script type="application/ld+json">' + "[" * 100_000 + "]" * 100_000 + "</script>"
    out = harvest(page(posting(), raw=raw), PAGE, ORIGINS)
    assert len(out.jobs) == 1
    deep = '{"@type": "JobPosting", "datePosted": "2024-01-01", "url": "/j", "title": '
    raw = f'<script type="application/ld+json">{deep}{"[" * 900}"x"{"]" * 900}}}</script>'
    out = harvest(page(raw=raw), PAGE, ORIGINS)
    assert out.jobs == [] and out.skipped == {"missing_title": 1}


def test_tolerates_raw_newlines_comment_wrappers_and_type_parameters() -> None:
    text = json.dumps(posting(title="Line\nbreak")).replace("\\n", "\n")
    raw = f'<script type="Application/LD+JSON; charset=utf-8"><!--\n{text}\n--></script>'
    (job,) = harvest(page(raw=raw), PAGE, ORIGINS).jobs
    assert job.title == "Line break"


@pytest.mark.parametrize(("change", "reason"), [
    ({"title": None}, "missing_title"),
    ({"title": "   "}, "missing_title"),
    ({"datePosted": None}, "missing_date"),
    ({"datePosted": "next tuesday"}, "invalid_date"),
])
def test_missing_fields_are_counted(change: dict, reason: str) -> None:
    item = {k: v for k, v in {**posting(), **change}.items() if v is not None}
    out = harvest(page(item), PAGE, ORIGINS)
    assert out.jobs == [] and out.skipped == {reason: 1}


def test_url_falls_back_to_the_page_only_for_a_single_posting() -> None:
    no_url = posting()
    del no_url["url"]
    (job,) = harvest(page(no_url), PAGE + "?lang=en", ORIGINS).jobs
    assert job.path == "/jobs/42?lang=en"

    out = harvest(page([no_url, no_url]), PUBLIC + "/jobs", ORIGINS)
    assert out.jobs == [] and out.skipped == {"missing_url": 2}

    foreign = posting(url="https://evil.example/jobs/1")
    (job,) = harvest(page(foreign), PAGE, ORIGINS).jobs
    assert job.path == "/jobs/42"
    out = harvest(page([foreign, foreign]), PUBLIC + "/jobs", ORIGINS)
    assert out.skipped == {"foreign_url": 2}
    out = harvest(page([posting(url="javascript:alert(1)")] * 2), PAGE, ORIGINS)
    assert out.skipped == {"foreign_url": 2}


def test_relative_and_public_origin_urls_become_paths() -> None:
    items = [posting(url="/jobs/1?x=1"), posting(url=PUBLIC + "/jobs/2"),
             posting(url="3")]
    assert [j.path for j in harvest(page(items), PUBLIC + "/jobs/", ORIGINS).jobs] == [
        "/jobs/1?x=1", "/jobs/2", "/jobs/3"]


def test_five_megabyte_description_is_truncated() -> None:
    huge = "<p>" + "é" * (5 * 1024 * 1024) + "</p>"
    (job,) = harvest(page(posting(description=huge, title="t" * 100_000)),
                     PAGE, ORIGINS).jobs
    assert job.description is not None
    assert len(job.description.encode()) <= MAX_DESCRIPTION
    assert len(job.title) == MAX_TEXT


def test_lone_surrogates_are_dropped_from_description() -> None:
    raw = ('<script type="application/ld+json">{"@type": "JobPosting", "title": "a",'
           ' "url": "/j", "datePosted": "2024-01-01", "description": "x\\ud800y"}</script>')
    (job,) = harvest(page(raw=raw), PAGE, ORIGINS).jobs
    assert job.description == "xy"


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("2024-05-01T10:00:00.000+02:00", datetime(2024, 5, 1, 8, tzinfo=UTC)),
    ("2024-05-01 10:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ("Wed, 01 May 2024 10:00:00 GMT", datetime(2024, 5, 1, 10, tzinfo=UTC)),
])
def test_parse_date(raw: str, expected: datetime) -> None:
    assert parse_date(raw) == expected.timestamp()


def test_bare_valid_through_date_lasts_the_whole_day() -> None:
    assert parse_date("2024-05-01", end_of_day=True) == datetime(
        2024, 5, 2, tzinfo=UTC).timestamp()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=20)
fields = st.sampled_from(["title", "url", "datePosted", "validThrough", "identifier",
                          "hiringOrganization", "jobLocation", "baseSalary",
                          "employmentType", "description", "experienceRequirements",
                          "educationRequirements", "@type", "@graph"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(fields, json_values, max_size=8), st.text(max_size=200))
def test_hostile_postings_never_raise(overrides: dict, junk: str) -> None:
    item = {**posting(), **overrides}
    raw = f'<script type="application/ld+json">{junk}</script>'
    out = harvest(page(item, [item], {"@graph": [item]}, raw=raw), PAGE, ORIGINS)
    for job in out.jobs:
        assert job.title and job.path.startswith("/")
